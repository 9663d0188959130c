-- One call delivers a whole batch of outgoing envelopes, in order. ARGV: channel prefix,
-- this instance, broadcast channel, the batch's records as ONE JSON array of [kind, index
-- into KEYS (a room's members hash, 0 when unused), target, byte length], and the
-- envelopes' JSON texts concatenated in the same order (cut by those lengths, so they are
-- neither escaped nor parsed on the way). Consecutive envelopes of the same kind to the
-- same target (a burst of ICE candidates) form one record whose text is the envelopes
-- joined by commas, so Redis looks the peer up and queues it once per run, not per frame.
-- Kinds: "r" to one peer, "p" to every other instance of the room, "i" to one instance,
-- "a" to all. Returns the positions (1-based) of the "r" records whose peer is no member.
-- Each channel gets a single message holding the JSON array of its envelopes, so Redis
-- and the receiving instances handle one message per batch, not one per frame. Within
-- one script nothing else runs, so a seat looked up once holds for the whole batch.
local prefix, self_id, all_channel = ARGV[1], ARGV[2], ARGV[3]
local records, blob, pos = cjson.decode(ARGV[4]), ARGV[5], 1
local queues, order, missing = {}, {}, {}
local peer_inst, room_insts = {}, {}
for i = 1, #KEYS do peer_inst[i] = {} end
local function push(channel, envelope)
  local q = queues[channel]
  if not q then
    q = {}
    queues[channel] = q
    table.insert(order, channel)
  end
  table.insert(q, envelope)
end
for i, rec in ipairs(records) do
  local kind, index, target = rec[1], rec[2], rec[3]
  local envelope = string.sub(blob, pos, pos + rec[4] - 1)
  pos = pos + rec[4]
  if kind == 'r' then
    local inst = peer_inst[index][target]
    if inst == nil then
      local cur = redis.call('HGET', KEYS[index], target)
      inst = cur and cjson.decode(cur)['instance_id'] or false
      peer_inst[index][target] = inst
    end
    if inst then
      if inst ~= self_id then push(prefix .. inst, envelope) end
    else
      table.insert(missing, i)
    end
  elseif kind == 'p' then
    local insts = room_insts[index]
    if not insts then
      insts = {}
      local seen = {}
      seen[self_id] = true
      for _, v in ipairs(redis.call('HVALS', KEYS[index])) do
        local inst = cjson.decode(v)['instance_id']
        if not seen[inst] then
          seen[inst] = true
          table.insert(insts, inst)
        end
      end
      room_insts[index] = insts
    end
    for _, inst in ipairs(insts) do push(prefix .. inst, envelope) end
  elseif kind == 'i' then
    push(prefix .. target, envelope)
  else
    push(all_channel, envelope)
  end
end
for _, channel in ipairs(order) do
  redis.call('PUBLISH', channel, '[' .. table.concat(queues[channel], ',') .. ']')
end
return missing
