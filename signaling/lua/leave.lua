-- KEYS: members hash, expiry zset, sequence counter. ARGV: peer_id, conn_id.
-- Returns the leave's number in the room's order (the peer_left's seq), 0 if not the seat's.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if cjson.decode(cur)['conn_id'] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[3])
