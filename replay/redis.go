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
	// NoBatch sends each call's script on its own. False (the zero value)
	// means that the scripts of concurrent calls share one pipeline (one
	// round trip, batch.go).
	NoBatch bool
}

// ConsumeLua defines the Lua functions of the consume script, for scripts
// that consume a token as the first part of a larger atomic step
// (ConsumeIn); the consume script itself is ConsumeLua and one call.
//
// herald_consume(key, epochKey, nonce, expires, minted, t) sets the jti key
// key unless it exists, and only while the token's life lasts by Redis' own
// clock (t, the reply of TIME, taken once by the caller), so that the
// replicas' clocks play no part: epochKey is the epoch key (in the same hash
// slot), nonce the caller's nonce, expires the end of the token's life in
// Unix milliseconds, which is also the key's expiry (PXAT), and minted the
// latest time the token can have been minted, in Unix milliseconds. It
// answers 1 when the key now holds the caller's nonce (set now, or by an
// earlier attempt of the same Consume whose answer was lost), 0 when another
// consumer holds it, -1 when the token's life has ended, -2 when the token
// was minted before the epoch, and -3 when it cannot tell.
//
// herald_epoch(epochKey, t) returns the epoch in Unix milliseconds: the
// start of the second in which this Redis server started with its current
// data, kept in the epoch key with no expiry. It sets the key when it is
// absent, from INFO server's uptime: Redis counts its uptime in whole
// seconds from a start time in whole seconds (uptime = now's second -
// start's second, on a clock cached up to a tick late), so the start lies
// within the second that begins at TIME's seconds minus uptime. A Redis
// that restarted without its data has lost both the records of used tokens
// and the epoch key: the first script after it reads INFO once and sets the
// new epoch, and every token minted before that second is refused, its use
// perhaps forgotten (one minted within it may predate the start: -3). Every
// other call reads the key, which costs Redis far less than building and
// parsing INFO. It needs Redis 6.2 or later (PXAT; scripts replicated by
// their effects, which allows TIME and INFO before a write).
const ConsumeLua = `
local function herald_epoch(ekey, t)
  local epoch = tonumber(redis.call('GET', ekey))
  if not epoch then
    local up = string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')
    if not up then return redis.error_reply('ERR herald: no uptime_in_seconds in INFO server') end
    epoch = (tonumber(t[1]) - tonumber(up)) * 1000
    redis.call('SET', ekey, epoch)
  end
  return epoch
end
local function herald_consume(key, ekey, nonce, expires, minted, t)
  local v = redis.call('GET', key)
  if v then
    if v == nonce then return 1 end
    return 0
  end
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(expires) <= now then return -1 end
  local epoch = herald_epoch(ekey, t)
  if type(epoch) == 'table' then return epoch end
  minted = tonumber(minted)
  if minted < epoch then return -2 end
  if minted < epoch + 1000 then return -3 end
  redis.call('SET', key, nonce, 'PXAT', expires)
  return 1
end
`

// consumeScript is Consume's script: KEYS[1] the jti key, KEYS[2] the
// epoch key (in the same hash slot), ARGV[1] the nonce, ARGV[2] the end of
// the token's life and ARGV[3] its latest mint time, in Unix milliseconds
// (herald_consume in ConsumeLua). It answers herald_consume's number.
var consumeScript = NewScript(ConsumeLua + `
return herald_consume(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], redis.call('TIME'))
`)

// Script is a Lua script with its SHA-1, for EVALSHA.
type Script struct {
	src, sha string
}

// NewScript returns src as a Script.
func NewScript(src string) *Script {
	return &Script{src: src, sha: redis.NewScript(src).Hash()}
}

// SHA returns the script's SHA-1, for EVALSHA.
func (s *Script) SHA() string { return s.sha }

// Source returns the script's text.
func (s *Script) Source() string { return s.src }

// Redis is the Store of the multi-replica mode: every replica sees the same
// records because they live in Redis, one key per consumed jti, set by a
// script that compares the token's expiry with Redis' clock and sets the key
// with PXAT at that expiry. Consume's key is "<prefix>jti:<jti>"; ConsumeIn
// and Use.Consume, which know the token's user, key it
// "<prefix>jti:{<user>}:<jti>" on a Redis Cluster, in the user's hash slot,
// so that it shares one script with the user's other keys and a token has
// one key whether or not the inbox is on. Beside them lives the epoch key (ConsumeLua):
// "<prefix>jti-epoch" on a single Redis; on a Redis Cluster one per hash
// slot in use, "<prefix>jti-epoch:{<tag>}", with a tag that lands in the
// jti key's slot.
//
// The client belongs to the caller, who may share it with other packages and
// closes it after closing the Redis store; Close does not close it.
//
// Retries are decided here, whatever the client's MaxRetries: go-redis never
// retries the script on its own. Consume retries once itself after a
// connection error, with the same nonce: the script recognises its own
// earlier write and answers 1.
type Redis struct {
	client  redis.UniversalClient // owned by the caller, never closed here
	prefix  string                // Prefix + "jti:"
	epoch   string                // Prefix + "jti-epoch"
	cluster bool                  // one epoch key per hash slot
	timeout time.Duration
	batch   *batcher    // nil with NoBatch
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
	r := &Redis{
		client:  client,
		prefix:  cfg.Prefix + "jti:",
		epoch:   cfg.Prefix + "jti-epoch",
		cluster: cluster,
		timeout: cfg.Timeout,
	}
	if !cfg.NoBatch {
		r.batch = &batcher{client: client, timeout: cfg.Timeout}
	}
	return r, nil
}

// Consume runs the consume script for jti. It returns true when this call
// set the key, false when it existed, and ErrExpired when expires has passed
// by Redis' clock or mintedBy is before the server's start (the epoch,
// ConsumeLua); when mintedBy lies in the second in which the server
// started, it returns an error wrapping ErrUnavailable (1013: try again
// later). Any other outcome (connection refused, timeout, cancelled ctx, an
// error reply) is an error wrapping both ErrUnavailable and its cause.
func (r *Redis) Consume(ctx context.Context, jti string, mintedBy, expires time.Time) (bool, error) {
	if err := checkArgs(jti, mintedBy, expires); err != nil {
		return false, err
	}
	return r.consume(ctx, r.prefix+jti, Use{JTI: jti, MintedBy: mintedBy, Expires: expires})
}

// consumeUse is Consume for u, under the key ConsumeIn gives it (Use.Consume).
func (r *Redis) consumeUse(ctx context.Context, u Use) (bool, error) {
	if err := checkArgs(u.JTI, u.MintedBy, u.Expires); err != nil {
		return false, err
	}
	return r.consume(ctx, r.key(u), u)
}

func (r *Redis) consume(ctx context.Context, key string, u Use) (bool, error) {
	reply, err := r.run(ctx, consumeScript, key, u, nil, nil)
	if err != nil {
		return false, err
	}
	code, ok := reply.(int64)
	if !ok {
		return false, fmt.Errorf("%w: redis consume script: unexpected reply %v", ErrUnavailable, reply)
	}
	return answer(code)
}

// Use is one use of a WS token, for ConsumeIn and the stores' combined
// steps (fanout/inbox).
type Use struct {
	JTI      string
	User     string    // the token's user
	MintedBy time.Time // the latest time the token can have been minted
	Expires  time.Time // the end of the token's life
}

// Consume is Consume for u, in store. On a Redis Cluster it keys the jti
// as ConsumeIn does, in the user's hash slot, so that a token is spent under
// one key whether or not a replica reads an inbox in the same step.
func (u Use) Consume(ctx context.Context, store Store) (bool, error) {
	if r, ok := store.(*Redis); ok {
		return r.consumeUse(ctx, u)
	}
	return store.Consume(ctx, u.JTI, u.MintedBy, u.Expires)
}

// key is u's jti key: "<prefix>jti:<jti>", or on a Redis Cluster
// "<prefix>jti:{<user>}:<jti>", in the user's hash slot.
func (r *Redis) key(u Use) string {
	if r.cluster && u.User != "" {
		return r.prefix + "{" + u.User + "}:" + u.JTI
	}
	return r.prefix + u.JTI
}

// ConsumeIn consumes u in the first part of script, an atomic step that
// goes on with the caller's own work: script defines ConsumeLua's functions
// and calls herald_consume(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], t)
// first, returning {code} unless the answer is 1, and {1, …} after its own
// work otherwise. ConsumeIn passes the jti key and the epoch key as KEYS[1]
// and KEYS[2] and the nonce, expiry and mint time as ARGV[1..3], followed
// by keys and args. The jti key is in the user's hash slot on a Redis
// Cluster, so keys may be the user's hash-tagged keys.
//
// It answers as Consume does: first is true only when the script set the
// key, and then rest is the rest of the script's reply; a token used before
// is (false, nil, nil). Retries, the timeout and the errors are Consume's.
func (r *Redis) ConsumeIn(ctx context.Context, script *Script, u Use, keys []string, args []any) (first bool, rest []any, err error) {
	if err := checkArgs(u.JTI, u.MintedBy, u.Expires); err != nil {
		return false, nil, err
	}
	reply, err := r.run(ctx, script, r.key(u), u, keys, args)
	if err != nil {
		return false, nil, err
	}
	all, ok := reply.([]any)
	var code int64
	if ok && len(all) > 0 {
		code, ok = all[0].(int64)
	}
	if !ok {
		return false, nil, fmt.Errorf("%w: redis consume script: unexpected reply %v", ErrUnavailable, reply)
	}
	if first, err = answer(code); !first || err != nil {
		return first, nil, err
	}
	return true, all[1:], nil
}

// answer turns herald_consume's number into Consume's answer.
func answer(code int64) (bool, error) {
	switch code {
	case 1:
		return true, nil
	case 0:
		return false, nil
	case -1:
		return false, ErrExpired
	case -2:
		return false, errForgotten
	case -3:
		return false, errJustStarted
	default:
		return false, fmt.Errorf("%w: redis consume script: unexpected reply %d", ErrUnavailable, code)
	}
}

// run runs script for the jti key key with the epoch key, a fresh nonce and
// u's times, then keys and args, within the store's timeout, once more
// after a connection error.
func (r *Redis) run(ctx context.Context, script *Script, key string, u Use, keys []string, args []any) (any, error) {
	if r.closed.Load() {
		return nil, errRedisClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	all := make([]any, 0, 6+len(keys)+3+len(args))
	all = append(all, "evalsha", script.sha, 2+len(keys), key, r.epochKey(key))
	for _, k := range keys {
		all = append(all, k)
	}
	all = append(all, rand.Text(), strconv.FormatInt(u.Expires.UnixMilli(), 10), strconv.FormatInt(u.MintedBy.UnixMilli(), 10))
	all = append(all, args...)
	var (
		reply any
		err   error
	)
	for attempt := 0; attempt < 2; attempt++ {
		reply, err = r.runOnce(ctx, script, all)
		if err == nil || !retryable(ctx, err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: redis consume script: %w", ErrUnavailable, err)
	}
	return reply, nil
}

// runOnce sends the script once, by hash (in a shared pipeline unless
// NoBatch) and then, if Redis does not know it yet, in full on its own
// (args is the EVALSHA command). go-redis does not retry a command alone;
// a pipeline it may send again after a broken connection, which the
// nonce makes harmless.
func (r *Redis) runOnce(ctx context.Context, script *Script, args []any) (any, error) {
	cmd := noRetryCmd{redis.NewCmd(ctx, args...)}
	if r.batch != nil {
		r.batch.do(ctx, cmd)
	} else {
		_ = r.client.Process(ctx, cmd)
	}
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		eval := append([]any{"eval", script.src}, args[2:]...)
		cmd = noRetryCmd{redis.NewCmd(ctx, eval...)}
		_ = r.client.Process(ctx, cmd)
	}
	return cmd.Result()
}

// epochKey is the epoch key for the jti key key: on a Redis Cluster, the
// one of key's hash slot.
func (r *Redis) epochKey(key string) string {
	if !r.cluster {
		return r.epoch
	}
	return r.epoch + ":{" + keyslot.Tag(keyslot.Of(key)) + "}"
}

// EpochKey returns the epoch key (ConsumeLua) of the stores under prefix
// on client that a script touching key uses: "<prefix>jti-epoch", or on a
// Redis Cluster the one of key's hash slot. A script that needs Redis'
// epoch without consuming a token (the inbox's read) uses it.
func EpochKey(client redis.UniversalClient, prefix, key string) string {
	r := Redis{epoch: prefix + "jti-epoch", cluster: isCluster(client)}
	return r.epochKey(key)
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
