package redis

import (
	"context"
	"errors"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// health checks ps every HealthInterval until done is closed. Any frame
// read from ps is proof of life (receive counts them in frames): on a
// subscribed connection the PONG queues behind every message already on
// its way, so a link that delivers is alive however late its PONG. The
// PING matters only when the link is silent: ps is closed when a PING is
// still unanswered and no frame at all was read for a whole interval, or
// when a PING cannot be sent. A blackholed Redis is so detected within two
// intervals.
func (r *session) health(ps *redis.PubSub, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	var sent, seen uint64 // PINGs sent; frames read at the previous tick
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		frames := r.frames.Load()
		busy := frames != seen
		seen = frames
		r.ticked.Store(frames)
		if sent > 0 && r.pongs.Load() < sent {
			if busy {
				continue // alive: the PONG is behind the messages being read
			}
			r.log.Warn("redis pub/sub health check: PING unanswered and nothing read", zap.Duration("for", r.cfg.HealthInterval))
			_ = ps.Close()
			return
		}
		sent++
		ctx, cancel := context.WithTimeout(r.guarded, r.cfg.HealthInterval)
		err := ps.Ping(ctx, strconv.FormatUint(sent, 10))
		cancel()
		if err != nil {
			// ErrClosed: the receive loop or Close closed ps, and knows.
			if !errors.Is(err, redis.ErrClosed) {
				r.log.Warn("redis pub/sub health check: PING failed", zap.Error(err))
				_ = ps.Close()
			}
			return
		}
	}
}

// outputBufferHint explains a connection Redis closed while it was
// delivering: the usual cause is its output-buffer limit for subscribers.
const outputBufferHint = "Redis may have dropped this subscriber at its output-buffer limit (client-output-buffer-limit pubsub, default 32mb hard, 8mb for 60s): " +
	"the connection closed while messages were arriving faster than this replica read them; " +
	"messages in between are lost (sockets get resync). Raise the limit, publish less, or give the replica more CPU"

// closedByServer reports whether err is the peer closing the connection
// (EOF, or a reset), as Redis does to a client it kills.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
