-- KEYS: members hash, expiry zset, sequence. ARGV: ttl, then peer_id/conn_id pairs.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and cjson.decode(cur)['conn_id'] == ARGV[i + 1] then
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
  end
end
local keep = math.ceil(ttl * 4)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
return 1
