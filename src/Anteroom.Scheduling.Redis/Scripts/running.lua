-- The running tickets, backend by backend in the order they started: id, owner, model, backend, start, attempts
-- of each, flat.
local out = {}
for _, b in ipairs(backends) do
  for _, id in ipairs(redis.call('ZRANGE', runningKey(b.name), 0, -1)) do
    local f = redis.call('HMGET', ticketKey(id), 'o', 'm', 'sa', 'n')
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
    out[#out + 1] = b.name
    out[#out + 1] = f[3]
    out[#out + 1] = f[4]
  end
end
return out
