package fanout

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// inboxPart is the key part of a user's inbox stream, after the prefix.
const inboxPart = "inbox:"

// Inbox returns the key of userID's inbox stream: "<prefix>inbox:<user_id>",
// or "<prefix>inbox:{<user_id>}" with sharded names, so that the stream
// and the user's channel share a hash slot in a Redis Cluster.
func (c Channels) Inbox(userID string) string {
	if c.sharded {
		return c.prefix + inboxPart + "{" + userID + "}"
	}
	return c.prefix + inboxPart + userID
}

// AppendScript is the publish path of the inbox, for every language (the
// file fanout/inbox_append.lua): it appends ARGV[2] (a JSON object) to the
// stream KEYS[1], trims the stream to about ARGV[3] entries and to ARGV[4]
// milliseconds of age, lets it expire after ARGV[4] ms without appends,
// and PUBLISHes the event's frame (the payload with "inbox_id" spliced in
// first) on the channel ARGV[1]. It returns {id, receivers}. It touches
// one key, so it runs unchanged on Redis Cluster. The README shows how to
// call it with EVAL.
//
//go:embed inbox_append.lua
var AppendScript string

// readScript is Read in one atomic step: KEYS[1] the stream; ARGV[1] since
// ("" for none, otherwise already validated as "<ms>-<seq>"); ARGV[2] the
// most events to return; ARGV[3], ARGV[4] as in AppendScript (for the
// marker entry of an inbox that does not exist); ARGV[5] and ARGV[6], when
// ARGV[5] is not empty, a channel and a message published once the head is
// read (ReadSync), with the command in ARGV[7] (PUBLISH, or SPUBLISH with
// sharded names, as in AppendScript). It returns
// {"ok"|"gap", head, id1, payload1, id2, payload2, …}.
const readScript = `local key, since, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
if ARGV[5] ~= '' then redis.call(ARGV[7], ARGV[5], ARGV[6]) end
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
if #first == 0 then
  local id = redis.call('XADD', key, 'MAXLEN', '~', tonumber(ARGV[3]) + 1, '*', 'o', '')
  redis.call('PEXPIRE', key, ARGV[4])
  if since == '' then return {'ok', id} end
  return {'gap', id}
end
local head = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1][1]
if since == '' then return {'ok', head} end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
if less(head, since) or less(since, first[1][1]) then return {'gap', head} end
local entries = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit + 1)
if #entries > limit then return {'gap', head} end
local out = {'ok', head}
for i = 1, #entries do
  local f = entries[i][2]
  for j = 1, #f, 2 do
    if f[j] == 'p' then
      out[#out + 1] = entries[i][1]
      out[#out + 1] = f[j + 1]
    end
  end
end
return out
`

var (
	appendScript = redis.NewScript(AppendScript)
	readInbox    = redis.NewScript(readScript)
)

// RedisInboxConfig configures NewRedisInbox.
type RedisInboxConfig struct {
	// Prefix starts every key and channel name (see Channels). Empty means
	// none.
	Prefix string
	InboxConfig
}

// RedisInbox is the Inbox of the multi-replica mode: one Redis Stream per
// user, "<prefix>inbox:<user_id>", written and read by Lua scripts that
// touch only that key. Append publishes through Redis, so the event
// reaches the user's sockets on every replica. It keeps no state of its
// own and is safe for concurrent use.
type RedisInbox struct {
	client redis.UniversalClient // the caller's
	ch     Channels
	cfg    InboxConfig
}

var (
	_ Inbox           = (*RedisInbox)(nil)
	_ InboxSyncReader = (*RedisInbox)(nil)
)

// NewRedisInbox returns a RedisInbox on client, which stays the caller's.
func NewRedisInbox(client redis.UniversalClient, cfg RedisInboxConfig) (*RedisInbox, error) {
	if client == nil {
		return nil, errors.New("fanout: NewRedisInbox with a nil client")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &RedisInbox{client: client, ch: channelsFor(client, cfg.Prefix), cfg: cfg.InboxConfig}, nil
}

// Append runs AppendScript for userID.
func (r *RedisInbox) Append(ctx context.Context, userID string, payload []byte) (string, error) {
	id, _, err := appendEvent(ctx, r.client, r.ch, r.cfg, userID, payload)
	return id, err
}

// appendEvent runs AppendScript; it returns the event id and the PUBLISH
// receivers. The script is never retried by go-redis, whatever the
// client's MaxRetries: after a connection dropped with the script already
// run, a retry would store and publish the event twice.
func appendEvent(ctx context.Context, c cmdProcessor, ch Channels, cfg InboxConfig, userID string, payload []byte) (string, int64, error) {
	if userID == "" {
		return "", 0, ErrInvalidTarget
	}
	if err := checkInboxPayload(payload); err != nil {
		return "", 0, err
	}
	publish := "PUBLISH"
	if ch.Sharded() {
		publish = "SPUBLISH" // the channel shares the stream's hash slot
	}
	res, err := runOnce(ctx, c, appendScript.Hash(), AppendScript, []string{ch.Inbox(userID)},
		ch.User(userID), payload, cfg.MaxLen, cfg.Retention.Milliseconds(), publish).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("fanout: inbox append for %s: %w", userID, err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("fanout: inbox append for %s: unexpected reply %v", userID, res)
	}
	id, _ := res[0].(string)
	n, _ := res[1].(int64)
	return id, n, nil
}

// Read runs the read script for userID. A malformed since is a gap that
// needs no round trip beyond creating a missing inbox.
func (r *RedisInbox) Read(ctx context.Context, userID, since string) (InboxRead, error) {
	return r.read(ctx, userID, since, "", nil)
}

// ReadSync is Read, and PUBLISHes sync on the user's channel in the same
// atomic step, where AppendScript publishes events (InboxSyncReader).
func (r *RedisInbox) ReadSync(ctx context.Context, userID, since string, sync []byte) (InboxRead, error) {
	return r.read(ctx, userID, since, r.ch.User(userID), sync)
}

func (r *RedisInbox) read(ctx context.Context, userID, since, channel string, sync []byte) (InboxRead, error) {
	gap := false
	if since != "" {
		if _, ok := ParseStreamID(since); !ok {
			since, gap = "", true
		}
	}
	publish := "PUBLISH"
	if r.ch.Sharded() {
		publish = "SPUBLISH" // the channel shares the stream's hash slot
	}
	res, err := readInbox.Run(ctx, r.client, []string{r.ch.Inbox(userID)},
		since, r.cfg.MaxLen, r.cfg.MaxLen, r.cfg.Retention.Milliseconds(), channel, sync, publish).Slice()
	if err != nil {
		return InboxRead{}, fmt.Errorf("fanout: inbox read for %s: %w", userID, err)
	}
	if len(res) < 2 || len(res)%2 != 0 {
		return InboxRead{}, fmt.Errorf("fanout: inbox read for %s: unexpected reply of %d items", userID, len(res))
	}
	status, _ := res[0].(string)
	head, _ := res[1].(string)
	out := InboxRead{Head: head, Gap: gap || status == "gap"}
	if out.Gap {
		return out, nil
	}
	if n := (len(res) - 2) / 2; n > 0 {
		out.Events = make([]InboxEvent, 0, n)
	}
	for i := 2; i < len(res); i += 2 {
		id, _ := res[i].(string)
		p, _ := res[i+1].(string)
		out.Events = append(out.Events, InboxEvent{ID: id, Payload: []byte(p)})
	}
	return out, nil
}

// Close does nothing: the client is the caller's.
func (r *RedisInbox) Close() error { return nil }

// cmdProcessor is the part of a go-redis client that runs a command.
type cmdProcessor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// runOnce runs the script src by its hash and, if Redis does not know it
// yet, in full, each as a command go-redis does not retry (see noRetryCmd).
func runOnce(ctx context.Context, c cmdProcessor, hash, src string, keys []string, args ...any) *redis.Cmd {
	evalArgs := func(name, body string) []any {
		a := append([]any{name, body, len(keys)}, toAny(keys)...)
		return append(a, args...)
	}
	cmd := noRetryCmd{redis.NewCmd(ctx, evalArgs("evalsha", hash)...)}
	_ = c.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd = noRetryCmd{redis.NewCmd(ctx, evalArgs("eval", src)...)}
		_ = c.Process(ctx, cmd)
	}
	return cmd.Cmd
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// noRetryCmd is a command go-redis runs at most once, whatever the client's
// MaxRetries.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }
