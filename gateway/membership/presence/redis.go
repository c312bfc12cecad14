package presence

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared membership in Redis. Create it with NewRedis.
type Redis struct {
	client  redis.UniversalClient
	cfg     Config
	keys    string   // what every key name starts with (keyBase)
	nodes   []string // KEYS of every script: the live replicas' key
	channel string   // the events' channel, prefix included
}

// NewRedis returns a Store in Redis: one Redis, a Sentinel-managed primary
// (a *redis.Client) or a Redis Cluster (a *redis.ClusterClient). The
// client is the caller's to close.
func NewRedis(client redis.UniversalClient, cfg Config) (*Redis, error) {
	if client == nil {
		return nil, errors.New("presence: NewRedis with a nil client")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	keys := keyBase(client, cfg.Prefix)
	return &Redis{client: client, cfg: cfg, keys: keys, nodes: []string{keys + "nodes"}, channel: cfg.Prefix + cfg.Channel}, nil
}

// keyBase returns what every key name starts with: "<prefix>presence:",
// the names deployments on one Redis or Sentinel already hold, or for a
// *redis.ClusterClient "<prefix>presence:{presence}:". The scripts touch
// several keys at once (every replica's hash), which Redis Cluster allows
// only within one slot: the hash tag puts them all in the slot of
// "presence", so one master holds the whole membership.
func keyBase(client redis.UniversalClient, prefix string) string {
	if _, ok := client.(*redis.ClusterClient); ok {
		return prefix + "presence:{presence}:"
	}
	return prefix + "presence:"
}

// Every script takes KEYS[1] = the live replicas' sorted set, which routes
// it to the master of the presence slot in a Redis Cluster (every other key
// shares that slot), and ARGV[1] = what key names start with, ARGV[2] =
// node and ARGV[3] = TTL in ms. It starts with this prelude: now (Redis'
// clock, ms), the live replicas, and sum(user), a user's count over them.
const prelude = `
local k, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nk, sk, pk, ok = KEYS[1], k .. 'sockets', k .. 'pending', k .. 'online'
local keep = math.max(3600000, 2 * ttl)
local function users(n) return k .. 'users:' .. n end
local function live() return redis.call('ZRANGEBYSCORE', nk, string.format('%d', now), '+inf') end
local function sum(nodes, user)
  local s = tonumber(redis.call('HGET', users(node), user) or '0')
  for _, n in ipairs(nodes) do
    if n ~= node then s = s + tonumber(redis.call('HGET', users(n), user) or '0') end
  end
  return s
end
local function event(user, online)
  return '{"type":"presence","user_id":' .. cjson.encode(user) .. ',"online":' .. tostring(online) .. ',"ts":' .. string.format('%d', now) .. '}'
end
local function forget(n, due)
  for _, u in ipairs(redis.call('HKEYS', users(n))) do redis.call('ZADD', pk, string.format('%d', due), u) end
  redis.call('DEL', users(n))
end
`

// ARGV[4] = this replica's socket count, or -1 to leave; ARGV[5] = the
// event channel (a classic PUBLISH, which a Redis Cluster relays to every
// node); ARGV[6] = 1 to forget node's users (join, leave); ARGV[7]
// = debounce ms. The users of a replica whose entry expired are checked at
// once (it has been gone for a TTL); those of a replica that joins or
// leaves after the debounce (they may reconnect).
//
// The reconciler: each refresh also walks the next 100 users of the online
// hash (HSCAN, its cursor kept in "reconcile") and takes offline every user
// whom no live replica counts and no offline check awaits. That is how a
// user comes offline whose replica's counts vanished before any replica
// forgot that replica (they expire at 2 x TTL: a replica SIGKILLed while
// no other refreshed, or Redis restarted from an RDB after an outage). A
// user is online only while counted or pending, so the walk removes no
// one who is online; a full pass takes (online users / 100) refreshes of
// the cluster. Every shared key also expires after an hour (or 2 x TTL if
// longer) without a refresh: nothing outlives a cluster gone for good.
var refreshScript = redis.NewScript(prelude + `
local count, channel, debounce = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[7])
local rejoined = 0
for _, n in ipairs(redis.call('ZRANGEBYSCORE', nk, '-inf', '(' .. string.format('%d', now))) do
  if n ~= node then forget(n, now) end
  redis.call('ZREM', nk, n)
  redis.call('HDEL', sk, n)
end
if ARGV[6] == '1' then forget(node, now + debounce) end
if count < 0 then
  redis.call('ZREM', nk, node)
  redis.call('HDEL', sk, node)
else
  rejoined = redis.call('ZADD', nk, string.format('%d', now + ttl), node)
  redis.call('HSET', sk, node, count)
  redis.call('PEXPIRE', users(node), 2 * ttl)
end
local nodes = live()
for _, u in ipairs(redis.call('ZRANGEBYSCORE', pk, '-inf', string.format('%d', now), 'LIMIT', 0, 1000)) do
  redis.call('ZREM', pk, u)
  if sum(nodes, u) == 0 and redis.call('HDEL', ok, u) == 1 then
    redis.call('PUBLISH', channel, event(u, false))
  end
end
local scan = redis.call('HSCAN', ok, redis.call('GET', k .. 'reconcile') or '0', 'COUNT', 100)
if scan[1] == '0' then redis.call('DEL', k .. 'reconcile') else redis.call('SET', k .. 'reconcile', scan[1], 'PX', keep) end
for i = 1, #scan[2], 2 do
  local u = scan[2][i]
  if sum(nodes, u) == 0 and not redis.call('ZSCORE', pk, u) then
    redis.call('HDEL', ok, u)
    redis.call('PUBLISH', channel, event(u, false))
  end
end
for _, key in ipairs({nk, sk, pk, ok}) do redis.call('PEXPIRE', key, keep) end
local out = {tostring(rejoined)}
for _, n in ipairs(nodes) do
  out[#out + 1] = n
  out[#out + 1] = redis.call('HGET', sk, n) or '0'
end
return out
`)

// ARGV[4] = channel, ARGV[5] = debounce ms, then quadruples user, delta,
// cap, socket id (” when not recorded). A recorded socket's age is kept in
// "socks:<user>" (score: Redis' clock, ms), for the evict-oldest policy.
var applyScript = redis.NewScript(prelude + `
local channel, debounce = ARGV[4], tonumber(ARGV[5])
local nodes = live()
local out = {}
for i = 6, #ARGV, 4 do
  local user, delta, cap, sock = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  local s = sum(nodes, user)
  local zk = k .. 'socks:' .. user
  if delta > 0 and cap > 0 and s >= cap then
    out[#out + 1] = -1
  elseif delta < 0 and sock ~= '' and redis.call('ZREM', zk, sock) == 0 then
    out[#out + 1] = s -- evicted: uncounted already
  else
    if sock ~= '' and delta > 0 then
      redis.call('ZADD', zk, 'NX', string.format('%d', now), sock)
      redis.call('PEXPIRE', zk, keep)
    end
    local own = redis.call('HINCRBY', users(node), user, delta)
    if own <= 0 then redis.call('HDEL', users(node), user) end
    s = s + delta
    if s > 0 then
      if redis.call('HSETNX', ok, user, '1') == 1 then
        redis.call('PUBLISH', channel, event(user, true))
      end
    else
      s = 0
      redis.call('ZADD', pk, string.format('%d', now + debounce), user)
    end
    out[#out + 1] = s
  end
end
redis.call('PEXPIRE', users(node), 2 * ttl)
redis.call('PEXPIRE', ok, keep)
redis.call('PEXPIRE', pk, keep)
return out
`)

// ARGV[4] = channel, ARGV[5] = user, ARGV[6] = cap, ARGV[7] = socket id.
// Room is made from the oldest recorded sockets; one whose replica is gone
// or no longer counts the user is dropped from the record without counting.
var evictScript = redis.NewScript(prelude + `
local channel, user, cap, sock = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local nodes = live()
local alive = {[node] = true}
for _, n in ipairs(nodes) do alive[n] = true end
local zk = k .. 'socks:' .. user
local s = sum(nodes, user)
local out = {0}
local victims, held = {}, {}
for _, id in ipairs(redis.call('ZRANGE', zk, 0, -1)) do
  if s - #victims < cap then break end
  local n = string.match(id, '^([^.]+)%.')
  local c = n and alive[n] and tonumber(redis.call('HGET', users(n), user) or '0') or 0
  if c - (held[n] or 0) > 0 then
    held[n] = (held[n] or 0) + 1
    victims[#victims + 1] = {id, n}
  else
    redis.call('ZREM', zk, id) -- its replica is gone, or no longer counts it
  end
end
if s - #victims >= cap then
  out[1] = -1 -- not enough recorded sockets to make room: evict none
  return out
end
for _, v in ipairs(victims) do
  redis.call('ZREM', zk, v[1])
  if redis.call('HINCRBY', users(v[2]), user, -1) <= 0 then redis.call('HDEL', users(v[2]), user) end
  s = s - 1
  out[#out + 1] = v[1]
end
redis.call('HINCRBY', users(node), user, 1)
out[1] = s + 1
redis.call('ZADD', zk, string.format('%d', now), sock)
redis.call('PEXPIRE', zk, keep)
if redis.call('HSETNX', ok, user, '1') == 1 then
  redis.call('PUBLISH', channel, event(user, true))
end
redis.call('PEXPIRE', users(node), 2 * ttl)
redis.call('PEXPIRE', ok, keep)
return out
`)

// ARGV[4] = user.
var countScript = redis.NewScript(prelude + `
return sum(live(), ARGV[4])
`)

func (r *Redis) args(node string, more ...any) []any {
	return append([]any{r.keys, node, r.cfg.TTL.Milliseconds()}, more...)
}

// Join implements Store.
func (r *Redis) Join(ctx context.Context, node string) error {
	_, err := r.refresh(ctx, node, 0, true)
	return err
}

// Refresh implements Store.
func (r *Redis) Refresh(ctx context.Context, node string, sockets int) (Replicas, error) {
	return r.refresh(ctx, node, sockets, false)
}

// Leave implements Store. node's per-user counts are dropped too: its
// sockets are closing, and the users who do not reconnect elsewhere get
// their offline event after the debounce even if the process exits first.
func (r *Redis) Leave(ctx context.Context, node string) error {
	_, err := r.refresh(ctx, node, -1, true)
	return err
}

func (r *Redis) refresh(ctx context.Context, node string, sockets int, join bool) (Replicas, error) {
	j := "0"
	if join {
		j = "1"
	}
	res, err := refreshScript.Run(ctx, r.client, r.nodes, r.args(node, sockets, r.channel, j, r.cfg.Debounce.Milliseconds())...).StringSlice()
	if err != nil || len(res) == 0 {
		return Replicas{}, fmt.Errorf("presence: refresh: %v %w", res, err)
	}
	out := Replicas{Sockets: make(map[string]int, len(res)/2), Rejoined: res[0] == "1"}
	for i := 1; i+1 < len(res); i += 2 {
		n, _ := strconv.Atoi(res[i+1])
		out.Sockets[res[i]] = n
	}
	return out, nil
}

// Apply implements Store.
func (r *Redis) Apply(ctx context.Context, node string, ops []Op) ([]int, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	args := r.args(node, r.channel, r.cfg.Debounce.Milliseconds())
	for _, op := range ops {
		args = append(args, op.User, op.Delta, op.Cap, op.Socket)
	}
	res, err := applyScript.Run(ctx, r.client, r.nodes, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: apply: %w", err)
	}
	out := make([]int, len(res))
	for i, v := range res {
		out[i] = int(v)
	}
	return out, nil
}

// ApplyEvictOldest implements Store.
func (r *Redis) ApplyEvictOldest(ctx context.Context, node string, op Op) (int, []string, error) {
	res, err := evictScript.Run(ctx, r.client, r.nodes, r.args(node, r.channel, op.User, op.Cap, op.Socket)...).Slice()
	if err != nil || len(res) == 0 {
		return 0, nil, fmt.Errorf("presence: apply (evict-oldest): %v %w", res, err)
	}
	n, _ := res[0].(int64)
	var evicted []string
	for _, v := range res[1:] {
		if id, ok := v.(string); ok {
			evicted = append(evicted, id)
		}
	}
	return int(n), evicted, nil
}

// Count implements Store.
func (r *Redis) Count(ctx context.Context, user string) (int, error) {
	n, err := countScript.Run(ctx, r.client, r.nodes, r.args("", user)...).Int()
	if err != nil {
		return 0, fmt.Errorf("presence: count: %w", err)
	}
	return n, nil
}
