package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/replay"
	"github.com/redis/go-redis/v9"
)

// readLua defines herald_inbox_read(key, ekey, since, limit, retention, t):
// the read of the stream key after since ("" for none, otherwise already
// validated as "<ms>-<seq>"), at most limit events, where ekey is Redis'
// epoch key (replay.ConsumeLua's herald_epoch), retention the inbox's in
// milliseconds and t the reply of TIME. It returns {"ok"|"gap", head, id1,
// payload1, id2, payload2, …}. It writes nothing but the epoch key when
// that is absent.
//
// A user who has no stream gets the head "<now ms - 1>-9007199254740992"
// (Position): not an entry (no stream is created), but a position after
// every id generated before the read and before every id generated after
// it (while Redis' clock does not step back), which records when it was
// read. A since that is such a position is a gap when events after it may
// have been lost: when it was read a retention ago or more (a stream may
// have been created after it and expired since; an event trimmed by age is
// older than the retention, so after the position only if the position is
// too), when Redis started after it without its data (the epoch; one
// second of doubt, as for tokens), when more than limit events follow it
// (trimming by count keeps limit+1), or when the stream has deleted any
// entry otherwise (max-deleted-entry-id of XINFO STREAM, Redis 7; with an
// older server, the next rule). A since that is an event's id is a gap
// when it is before the first entry kept (trimmed, or the stream was
// recreated after it), at or before the newest deleted entry, newer than
// the head, or when no stream exists.
const readLua = `
local function herald_id(s)
  local m, q = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(m), tonumber(q)
end
local function herald_less(a, b)
  local am, as = herald_id(a)
  local bm, bs = herald_id(b)
  return am < bm or (am == bm and as < bs)
end
local function herald_inbox_read(key, ekey, since, limit, retention, t)
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local none = string.format('%.0f', now - 1) .. '-9007199254740992'
  if since == '' then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    if #last == 0 then return {'ok', none} end
    return {'ok', last[1][1]}
  end
  local sm, ss = herald_id(since)
  local position = ss == 9007199254740992
  local gap = false
  if position then
    local epoch = herald_epoch(ekey, t)
    if type(epoch) == 'table' then return epoch end
    gap = sm + 1 <= now - retention or sm + 1 < epoch + 1000
  end
  local info = redis.pcall('XINFO', 'STREAM', key)
  if info.err then
    if position and not gap then return {'ok', since} end
    return {'gap', none}
  end
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  local head = f['last-generated-id']
  local first = head
  if f['first-entry'] then first = f['first-entry'][1] end
  local maxdel = f['max-deleted-entry-id']
  if gap or herald_less(head, since) or (maxdel and not herald_less(maxdel, since))
    or ((not position or not maxdel) and herald_less(since, first)) then
    return {'gap', head}
  end
  local entries = redis.call('XRANGE', key, '(' .. since, '+', 'COUNT', limit + 1)
  if #entries > limit then return {'gap', head} end
  local out = {'ok', head}
  for i = 1, #entries do
    local e = entries[i][2]
    for j = 1, #e, 2 do
      if e[j] == 'p' then
        out[#out + 1] = entries[i][1]
        out[#out + 1] = e[j + 1]
      end
    end
  end
  return out
end
`

// readScript is Read in one atomic step: KEYS[1] the stream, KEYS[2] the
// epoch key (replay.EpochKey); ARGV[1] since, ARGV[2] the most events to
// return, ARGV[3] the retention in milliseconds (herald_inbox_read);
// ARGV[4] and ARGV[5], when ARGV[4] is not empty, a channel and a message
// published in the same step (ReadSync), with the command in ARGV[6]
// (PUBLISH, or SPUBLISH with sharded names, as in AppendScript).
var readScript = replay.NewScript(replay.ConsumeLua + readLua + `
if ARGV[4] ~= '' then redis.call(ARGV[6], ARGV[4], ARGV[5]) end
return herald_inbox_read(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), redis.call('TIME'))
`)

// handshakeScript is ConsumeReadSync in one atomic step: it consumes the
// token (KEYS[1], KEYS[2], ARGV[1..3], as replay.Redis.ConsumeIn passes
// them) and, for its first use only, publishes the sync message and reads
// the stream KEYS[3], with ARGV[4..9] as readScript's ARGV[1..6]. It
// returns {code} when the token is refused, else {1, "ok"|"gap", head, …}.
var handshakeScript = replay.NewScript(replay.ConsumeLua + readLua + `
local t = redis.call('TIME')
local code = herald_consume(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], t)
if type(code) == 'table' then return code end
if code ~= 1 then return {code} end
if ARGV[7] ~= '' then redis.call(ARGV[9], ARGV[7], ARGV[8]) end
local r = herald_inbox_read(KEYS[3], KEYS[2], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), t)
if r.err then return r end
table.insert(r, 1, 1)
return r
`)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// Prefix starts every key and channel name (see Channels). Empty means
	// none.
	Prefix string
	publish.InboxConfig
}

// Redis is the Inbox of the multi-replica mode: one Redis Stream per
// user, "<prefix>inbox:<user_id>", written and read by Lua scripts that
// touch only that key and the user's channel (and, to read, Redis' epoch
// key and, in the handshake, the token's jti key, in the user's hash slot
// on a Redis Cluster). Append publishes through Redis, so the event reaches
// the user's sockets on every replica. It keeps no state of its own and is
// safe for concurrent use.
type Redis struct {
	client redis.UniversalClient // the caller's
	prefix string
	ch     publish.Channels
	cfg    publish.InboxConfig
	pub    *publish.Publisher // appends, the way every publisher does
}

var (
	_ Inbox       = (*Redis)(nil)
	_ SyncReader  = (*Redis)(nil)
	_ TokenReader = (*Redis)(nil)
)

// NewRedis returns a Redis on client, which stays the caller's.
func NewRedis(client redis.UniversalClient, cfg RedisConfig) (*Redis, error) {
	if client == nil {
		return nil, errors.New("fanout: NewRedis with a nil client")
	}
	cfg.InboxConfig = cfg.InboxConfig.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pub, err := publish.NewPublisher(client, publish.PublisherConfig{Prefix: cfg.Prefix, Inbox: cfg.InboxConfig})
	if err != nil {
		return nil, err
	}
	return &Redis{client: client, prefix: cfg.Prefix, ch: pub.Channels(), cfg: cfg.InboxConfig, pub: pub}, nil
}

// Append runs AppendScript for userID (Publisher.AppendToUser).
func (r *Redis) Append(ctx context.Context, userID string, payload []byte) (string, error) {
	id, _, err := r.pub.AppendToUser(ctx, userID, payload)
	return id, err
}

// Read runs the read script for userID. A malformed since is a gap that
// needs no round trip beyond reading the head.
func (r *Redis) Read(ctx context.Context, userID, since string) (Result, error) {
	return r.read(ctx, userID, since, nil, false)
}

// ReadSync is Read, and PUBLISHes sync on the user's channel in the same
// atomic step, where AppendScript publishes events (SyncReader).
func (r *Redis) ReadSync(ctx context.Context, userID, since string, sync []byte) (Result, error) {
	return r.read(ctx, userID, since, sync, true)
}

// ConsumeReadSync consumes u and reads u.User's inbox, publishing sync
// (when not nil), in one script (TokenReader) when store is a
// *replay.Redis; with any other store, it is store's Consume, then
// ReadSync.
func (r *Redis) ConsumeReadSync(ctx context.Context, store replay.Store, u replay.Use, since string, sync []byte) (Result, error) {
	rs, ok := store.(*replay.Redis)
	if !ok {
		return consumeThenRead(ctx, r, store, u, since, sync)
	}
	since, gap := checkSince(since)
	channel, cmd := r.syncArgs(u.User, sync)
	first, rest, err := rs.ConsumeIn(ctx, handshakeScript, u, []string{r.ch.Inbox(u.User)},
		[]any{since, r.cfg.MaxLen, r.cfg.Retention.Milliseconds(), channel, sync, cmd})
	switch {
	case err != nil:
		return Result{}, err
	case !first:
		return Result{}, replay.ErrReused
	}
	return decodeRead(u.User, rest, gap)
}

// checkSince turns a malformed since into none and a gap.
func checkSince(since string) (string, bool) {
	if since != "" {
		if _, ok := ParseStreamID(since); !ok {
			return "", true
		}
	}
	return since, false
}

// syncArgs returns the channel and the command that publish sync to
// userID, or no channel when sync is nil.
func (r *Redis) syncArgs(userID string, sync []byte) (channel, cmd string) {
	cmd = "PUBLISH"
	if r.ch.Sharded() {
		cmd = "SPUBLISH" // the channel shares the stream's hash slot
	}
	if sync == nil {
		return "", cmd
	}
	return r.ch.User(userID), cmd
}

func (r *Redis) read(ctx context.Context, userID, since string, sync []byte, withSync bool) (Result, error) {
	since, gap := checkSince(since)
	if withSync && sync == nil {
		sync = []byte{}
	}
	channel, cmd := r.syncArgs(userID, sync)
	key := r.ch.Inbox(userID)
	args := []any{"evalsha", readScript.SHA(), 2, key, replay.EpochKey(r.client, r.prefix, key),
		since, r.cfg.MaxLen, r.cfg.Retention.Milliseconds(), channel, sync, cmd}
	res, err := r.client.Do(ctx, args...).Slice()
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		args[0], args[1] = "eval", readScript.Source()
		res, err = r.client.Do(ctx, args...).Slice()
	}
	if err != nil {
		return Result{}, fmt.Errorf("fanout: inbox read for %s: %w", userID, err)
	}
	return decodeRead(userID, res, gap)
}

// decodeRead decodes herald_inbox_read's reply.
func decodeRead(userID string, res []any, gap bool) (Result, error) {
	if len(res) < 2 || len(res)%2 != 0 {
		return Result{}, fmt.Errorf("fanout: inbox read for %s: unexpected reply of %d items", userID, len(res))
	}
	status, _ := res[0].(string)
	head, _ := res[1].(string)
	out := Result{Head: head, Gap: gap || status == "gap"}
	if out.Gap {
		return out, nil
	}
	if n := (len(res) - 2) / 2; n > 0 {
		out.Events = make([]Event, 0, n)
	}
	for i := 2; i < len(res); i += 2 {
		id, _ := res[i].(string)
		p, _ := res[i+1].(string)
		out.Events = append(out.Events, Event{ID: id, Payload: []byte(p)})
	}
	return out, nil
}

// Close does nothing: the client is the caller's.
func (r *Redis) Close() error { return nil }
