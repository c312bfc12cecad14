package inbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/redis/go-redis/v9"
)

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

var readInbox = redis.NewScript(readScript)

// RedisConfig configures NewRedis.
type RedisConfig struct {
	// Prefix starts every key and channel name (see Channels). Empty means
	// none.
	Prefix string
	publish.InboxConfig
}

// Redis is the Inbox of the multi-replica mode: one Redis Stream per
// user, "<prefix>inbox:<user_id>", written and read by Lua scripts that
// touch only that key. Append publishes through Redis, so the event
// reaches the user's sockets on every replica. It keeps no state of its
// own and is safe for concurrent use.
type Redis struct {
	client redis.UniversalClient // the caller's
	ch     publish.Channels
	cfg    publish.InboxConfig
	pub    *publish.Publisher // appends, the way every publisher does
}

var (
	_ Inbox      = (*Redis)(nil)
	_ SyncReader = (*Redis)(nil)
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
	return &Redis{client: client, ch: pub.Channels(), cfg: cfg.InboxConfig, pub: pub}, nil
}

// Append runs AppendScript for userID (Publisher.AppendToUser).
func (r *Redis) Append(ctx context.Context, userID string, payload []byte) (string, error) {
	id, _, err := r.pub.AppendToUser(ctx, userID, payload)
	return id, err
}

// Read runs the read script for userID. A malformed since is a gap that
// needs no round trip beyond creating a missing inbox.
func (r *Redis) Read(ctx context.Context, userID, since string) (Result, error) {
	return r.read(ctx, userID, since, "", nil)
}

// ReadSync is Read, and PUBLISHes sync on the user's channel in the same
// atomic step, where AppendScript publishes events (SyncReader).
func (r *Redis) ReadSync(ctx context.Context, userID, since string, sync []byte) (Result, error) {
	return r.read(ctx, userID, since, r.ch.User(userID), sync)
}

func (r *Redis) read(ctx context.Context, userID, since, channel string, sync []byte) (Result, error) {
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
		return Result{}, fmt.Errorf("fanout: inbox read for %s: %w", userID, err)
	}
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
