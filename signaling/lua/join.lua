-- KEYS: members hash, expiry zset, sequence counter. ARGV: peer_id, member json, cap, ttl.
-- Expired seats (a crashed instance stops refreshing them) are purged before counting, and
-- the count and the insert happen in one script, so racing joins cannot exceed the cap.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, p in ipairs(expired) do
  redis.call('HDEL', KEYS[1], p)
  redis.call('ZREM', KEYS[2], p)
end
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return {0, '', '', redis.call('HVALS', KEYS[1])}
end
-- A replaced seat leaves first: its peer_left takes the number before the new join's.
if prev then redis.call('INCR', KEYS[3]) end
local seq = redis.call('INCR', KEYS[3])
local member = cjson.decode(ARGV[2])
member['seq'] = seq
local encoded = cjson.encode(member)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local keep = math.ceil(ttl * 4)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
local others = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then table.insert(others, all[i + 1]) end
end
return {1, encoded, prev or '', others}
