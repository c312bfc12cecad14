-- herald inbox: append one event to a user's inbox and publish it with its id.
-- KEYS[1]  the inbox stream: <prefix>inbox:<user_id>
-- ARGV[1]  the user's channel: <prefix>user:<user_id>
-- ARGV[2]  the event, a JSON object (it must start with '{')
-- ARGV[3]  the most events replayed, herald's --inbox-max-len: the stream keeps one
--          entry more (XADD MAXLEN ~ ARGV[3]+1), so that a since at the entry before
--          the newest ARGV[3] still finds its place and gets all of them
-- ARGV[4]  the retention in milliseconds (XTRIM MINID, PEXPIRE), herald's --inbox-retention
-- ARGV[5]  optional: 'SPUBLISH' on a Redis Cluster (KEYS[1] is then <prefix>inbox:{<user_id>}
--          and ARGV[1] <prefix>user:{<user_id>}, one hash slot); PUBLISH otherwise
-- Returns {id, receivers}: the event's stream id and the PUBLISH count.
local p = ARGV[2]
if string.sub(p, 1, 1) ~= '{' then
  return redis.error_reply('ERR herald inbox: the payload must be a JSON object')
end
-- herald splices the event's id in as "inbox_id": a payload may not carry
-- its own at the top level. Parsed only when it holds the text or an escape.
if string.find(p, 'inbox_id', 1, true) or string.find(p, '\\u', 1, true) then
  local ok, t = pcall(cjson.decode, p)
  if not ok or type(t) ~= 'table' then
    return redis.error_reply('ERR herald inbox: the payload must be a JSON object')
  end
  if t['inbox_id'] ~= nil then
    return redis.error_reply('ERR herald inbox: the payload must not have a top-level "inbox_id": herald adds the event\'s own')
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[3]) + 1, '*', 'p', p)
local minms = tonumber(string.match(id, '^(%d+)')) - tonumber(ARGV[4])
if minms > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', minms) .. '-0')
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local rest = string.sub(p, 2)
local sep = ','
if string.find(rest, '^%s*}') then sep = '' end
local publish = 'PUBLISH'
if ARGV[5] == 'SPUBLISH' then publish = 'SPUBLISH' end
local n = redis.call(publish, ARGV[1], '{"inbox_id":"' .. id .. '"' .. sep .. rest)
return {id, n}
