package replay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// Prefix is prepended to every key, which is then "<Prefix>jti:<jti>".
	// Empty means no prefix.
	Prefix string
	// Timeout bounds each Consume through the context handed to the client.
	// Zero (or a negative value) means 500ms. go-redis applies a context
	// deadline to socket reads and writes only when the client was built
	// with ContextTimeoutEnabled; otherwise its ReadTimeout and WriteTimeout
	// bound a server that accepted the command but does not answer.
	Timeout time.Duration
}

// Redis is the Store of the multi-replica mode: every replica sees the same
// records because they live in Redis as `SET <prefix>jti:<jti> 1 NX PX <ms>`.
//
// The client belongs to the caller, who may share it with other packages and
// closes it after closing the Redis store; Close does not close it.
//
// A command the client retries after its first attempt reached the server
// finds the key it set itself and reports false: an unlucky token is refused
// as reused rather than accepted twice.
type Redis struct {
	client  redis.UniversalClient // owned by the caller, never closed here
	prefix  string                // Prefix + "jti:"
	timeout time.Duration
	closed  atomic.Bool // set by Close
}

// errRedisClosed is what Consume returns after Close.
var errRedisClosed = fmt.Errorf("%w: redis store closed", ErrUnavailable)

var _ Store = (*Redis)(nil)

// DefaultRedisTimeout bounds one Consume when RedisConfig.Timeout is zero.
const DefaultRedisTimeout = 500 * time.Millisecond

// ErrNilClient is returned by NewRedis without a client.
var ErrNilClient = errors.New("replay: NewRedis needs a Redis client")

// NewRedis returns a Redis store that uses client, with cfg's zero fields set
// to their defaults. It does not contact the server. It returns
// ErrNilClient if client is nil.
func NewRedis(client redis.UniversalClient, cfg RedisConfig) (*Redis, error) {
	if client == nil {
		return nil, ErrNilClient
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRedisTimeout
	}
	return &Redis{
		client:  client,
		prefix:  cfg.Prefix + "jti:",
		timeout: cfg.Timeout,
	}, nil
}

// Consume runs `SET <prefix>jti:<jti> 1 NX PX <ms>`, with ttl rounded up to
// a whole millisecond. It returns true when the key was set and false when
// it existed. Any other outcome (connection refused, timeout, cancelled ctx,
// an error reply) is an error wrapping both ErrUnavailable and its cause.
func (r *Redis) Consume(ctx context.Context, jti string, ttl time.Duration) (bool, error) {
	if err := checkArgs(jti, ttl); err != nil {
		return false, err
	}
	if r.closed.Load() {
		return false, errRedisClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	// Built by hand rather than with SetNX, which switches to EX when ttl is
	// a whole number of seconds: the contract names PX.
	reply, err := r.client.Do(ctx, "set", r.prefix+jti, "1", "nx", "px", ttlMillis(ttl)).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w: redis SET NX: %w", ErrUnavailable, err)
	case reply != "OK":
		return false, fmt.Errorf("%w: redis SET NX: unexpected reply %q", ErrUnavailable, reply)
	}
	return true, nil
}

// Close makes later Consume calls fail with ErrUnavailable. It does not close
// the client, which belongs to the caller. It is idempotent and returns nil.
func (r *Redis) Close() error {
	r.closed.Store(true)
	return nil
}

// ttlMillis returns ttl in whole milliseconds, rounded up; ttl must be
// positive, so the result is at least 1.
func ttlMillis(ttl time.Duration) int64 {
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 {
		ms++
	}
	return ms
}
