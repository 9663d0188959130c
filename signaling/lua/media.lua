-- KEYS: members hash. ARGV: peer_id, conn_id, audio, video.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local m = cjson.decode(cur)
if m['conn_id'] ~= ARGV[2] then return 0 end
m['audio'] = ARGV[3] == '1'
m['video'] = ARGV[4] == '1'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
return 1
