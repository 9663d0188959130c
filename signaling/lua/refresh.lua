-- KEYS: members hash, expiry zset, sequence. ARGV: ttl, then peer_id/conn_id/member json
-- triples of the seats this instance holds.
-- A seat still held by that connection gets a new expiry. A seat missing altogether was lost
-- by Redis (restarted empty): it is put back, and the room's numbering is moved past its
-- seq, so that events after the restart are newer than what every client already knows.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur then
    if cjson.decode(cur)['conn_id'] == ARGV[i + 1] then
      redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
    end
  else
    local member = cjson.decode(ARGV[i + 2])
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
    local seq = tonumber(member['seq'] or 0)
    if seq > tonumber(redis.call('GET', KEYS[3]) or '0') then
      redis.call('SET', KEYS[3], seq)
    end
  end
end
local keep = math.ceil(ttl * 4)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
return 1
