package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// redisLogger carries go-redis' own log lines (a pool that failed to dial,
// the master a sentinel picked) into herald's zap logger, so that stderr
// holds JSON only. go-redis has one logger for the whole process, so
// useRedisLogger replaces it for every client.
type redisLogger struct{ log *zap.Logger }

// useRedisLogger routes go-redis' log through log.
func useRedisLogger(log *zap.Logger) { redis.SetLogger(redisLogger{log: log}) }

// Printf logs one go-redis line. The message is constant, so that the
// sampler bounds a burst of failed dials; the line itself is a field.
// Lines that report a failure are warnings, the others (a sentinel naming
// the master) information.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	line := strings.TrimSpace(fmt.Sprintf(format, v...))
	lower := strings.ToLower(line)
	if strings.Contains(lower, "fail") || strings.Contains(lower, "error") || strings.Contains(lower, "err ") {
		l.log.Warn("go-redis", zap.String("detail", line))
		return
	}
	l.log.Info("go-redis", zap.String("detail", line))
}
