package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/internal/keyslot"
)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// Prefix is prepended to every key, which is then "<Prefix>jti:<jti>".
	// Empty means no prefix.
	Prefix string
	// Timeout bounds each Consume, its one retry included, through the
	// context handed to the client. Zero (or a negative value) means 500ms.
	// go-redis applies a context deadline to socket reads and writes only
	// when the client was built with ContextTimeoutEnabled; otherwise its
	// ReadTimeout and WriteTimeout bound a server that accepted the command
	// but does not answer.
	Timeout time.Duration
}

// consumeScript sets the jti key unless it exists, and only while the
// token's life lasts by Redis' own clock (TIME), so that the replicas' clocks
// play no part: KEYS[1] is the jti key, KEYS[2] the epoch key (in the same
// hash slot), ARGV[1] the caller's nonce, ARGV[2] the end of the token's
// life in Unix milliseconds, which is also the key's expiry (PXAT), and
// ARGV[3] the latest time the token can have been minted, in Unix
// milliseconds. It answers 1 when the key now holds the caller's nonce (set
// now, or by an earlier attempt of the same Consume whose answer was lost),
// 0 when another consumer holds it, -1 when the token's life has ended, -2
// when the token was minted before the epoch, and -3 when it cannot tell.
//
// The epoch is the start of the second in which this Redis server started
// with its current data, kept in the epoch key with no expiry. The script
// sets it when the key is absent, from INFO server's uptime: Redis counts
// its uptime in whole seconds from a start time in whole seconds (uptime =
// now's second - start's second, on a clock cached up to a tick late), so
// the start lies within the second that begins at TIME's seconds minus
// uptime. A Redis that restarted without its data has lost both the
// records of used tokens and the epoch key: the first script after it reads
// INFO once and sets the new epoch, and every token minted before that
// second is refused, its use perhaps forgotten (one minted within it may
// predate the start: -3). Every other call reads the key, which costs
// Redis far less than building and parsing INFO. It needs Redis 6.2 or
// later (PXAT; scripts replicated by their effects, which allows TIME and
// INFO before a write).
const consumeScript = `
local v = redis.call('GET', KEYS[1])
if v then
  if v == ARGV[1] then return 1 end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) <= now then return -1 end
local epoch = tonumber(redis.call('GET', KEYS[2]))
if not epoch then
  local up = string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')
  if not up then return redis.error_reply('ERR herald: no uptime_in_seconds in INFO server') end
  epoch = (tonumber(t[1]) - tonumber(up)) * 1000
  redis.call('SET', KEYS[2], epoch)
end
local minted = tonumber(ARGV[3])
if minted < epoch then return -2 end
if minted < epoch + 1000 then return -3 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
`

// consumeSHA is the SHA-1 of consumeScript, for EVALSHA.
var consumeSHA = redis.NewScript(consumeScript).Hash()

// Redis is the Store of the multi-replica mode: every replica sees the same
// records because they live in Redis, one key per consumed jti,
// "<prefix>jti:<jti>", set by a script that compares the token's expiry with
// Redis' clock and sets the key with PXAT at that expiry. Beside them lives
// the epoch key (consumeScript): "<prefix>jti-epoch" on a single Redis; on
// a Redis Cluster one per hash slot in use, "<prefix>jti-epoch:{<tag>}",
// with a tag that lands in the jti key's slot.
//
// The client belongs to the caller, who may share it with other packages and
// closes it after closing the Redis store; Close does not close it.
//
// Retries are decided here, whatever the client's MaxRetries: go-redis never
// retries the script on its own (a blind retry after a lost answer would
// find the key and report a fresh token as reused). Consume retries once
// itself after a connection error, with the same nonce: the script
// recognises its own earlier write and answers 1.
type Redis struct {
	client  redis.UniversalClient // owned by the caller, never closed here
	prefix  string                // Prefix + "jti:"
	epoch   string                // Prefix + "jti-epoch"
	cluster bool                  // one epoch key per hash slot
	timeout time.Duration
	closed  atomic.Bool // set by Close
}

// errJustStarted is what Consume returns for a token minted within the
// second in which Redis started: the client should try again shortly, with
// a new token.
var errJustStarted = fmt.Errorf("%w: redis started within a second of the token's minting; try again", ErrUnavailable)

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
	cluster := isCluster(client)
	if cluster {
		keyslot.Tag(0) // work the slots' tags out now, not in the first handshake
	}
	return &Redis{
		client:  client,
		prefix:  cfg.Prefix + "jti:",
		epoch:   cfg.Prefix + "jti-epoch",
		cluster: cluster,
		timeout: cfg.Timeout,
	}, nil
}

// Consume runs consumeScript for jti. It returns true when this call set the
// key, false when it existed, and ErrExpired when expires has passed by
// Redis' clock or mintedBy is before the server's start (the epoch,
// consumeScript); when mintedBy lies in the second in which the server
// started, it returns an error wrapping
// ErrUnavailable (1013: try again later). Any other outcome (connection refused, timeout, cancelled
// ctx, an error reply) is an error wrapping both ErrUnavailable and its
// cause.
func (r *Redis) Consume(ctx context.Context, jti string, mintedBy, expires time.Time) (bool, error) {
	if err := checkArgs(jti, mintedBy, expires); err != nil {
		return false, err
	}
	if r.closed.Load() {
		return false, errRedisClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	key, nonce := r.prefix+jti, rand.Text()
	epoch := r.epochKey(key)
	end := strconv.FormatInt(expires.UnixMilli(), 10)
	minted := strconv.FormatInt(mintedBy.UnixMilli(), 10)
	var (
		reply int64
		err   error
	)
	for attempt := 0; attempt < 2; attempt++ {
		reply, err = r.run(ctx, key, epoch, nonce, end, minted)
		if err == nil || !retryable(ctx, err) {
			break
		}
	}
	switch {
	case err != nil:
		return false, fmt.Errorf("%w: redis consume script: %w", ErrUnavailable, err)
	case reply == 1:
		return true, nil
	case reply == 0:
		return false, nil
	case reply == -1:
		return false, ErrExpired
	case reply == -2:
		return false, errForgotten
	case reply == -3:
		return false, errJustStarted
	default:
		return false, fmt.Errorf("%w: redis consume script: unexpected reply %d", ErrUnavailable, reply)
	}
}

// run sends the script once, by hash and then, if Redis does not know it
// yet, in full. Neither command is retried by go-redis.
func (r *Redis) run(ctx context.Context, key, epoch, nonce, end, minted string) (int64, error) {
	cmd := noRetryCmd{redis.NewCmd(ctx, "evalsha", consumeSHA, 2, key, epoch, nonce, end, minted)}
	_ = r.client.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd = noRetryCmd{redis.NewCmd(ctx, "eval", consumeScript, 2, key, epoch, nonce, end, minted)}
		_ = r.client.Process(ctx, cmd)
	}
	return cmd.Int64()
}

// epochKey is the epoch key for the jti key key: on a Redis Cluster, the
// one of key's hash slot.
func (r *Redis) epochKey(key string) string {
	if !r.cluster {
		return r.epoch
	}
	return r.epoch + ":{" + keyslot.Tag(keyslot.Of(key)) + "}"
}

// isCluster reports whether client spreads keys over a Redis Cluster.
func isCluster(client redis.UniversalClient) bool {
	_, ok := client.(*redis.ClusterClient)
	return ok
}

// retryable reports whether a failed attempt may be sent again: a broken or
// refused connection, while ctx lasts. Error replies from Redis and
// timeouts are final.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return false
	}
	_, isReply := errors.AsType[redis.Error](err)
	return !isReply
}

// noRetryCmd is a command go-redis runs at most once, whatever the client's
// MaxRetries.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// Close makes later Consume calls fail with ErrUnavailable. It does not close
// the client, which belongs to the caller. It is idempotent and returns nil.
func (r *Redis) Close() error {
	r.closed.Store(true)
	return nil
}
