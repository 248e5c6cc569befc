-- The waiting tickets in dispatch order per model, at most ARGV[A] of each: id, owner, model, weight, position,
-- arrival of each, flat.
local limit = tonumber(ARGV[A])
local out = {}
for _, model in ipairs(models) do
  for position, member in ipairs(redis.call('ZRANGE', queueKey(model), 0, limit - 1)) do
    local id = idOf(member)
    local f = redis.call('HMGET', ticketKey(id), 'o', 'w', 'a')
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = model
    out[#out + 1] = f[2]
    out[#out + 1] = position
    out[#out + 1] = f[3]
  end
end
return out
