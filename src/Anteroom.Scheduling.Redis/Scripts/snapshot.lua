-- The counters, each model's queue, each backend's slots and use, and the recent waits.
local modelRows = {}
for _, model in ipairs(models) do
  local running, slots = 0, 0
  for _, b in ipairs(servedBy[model]) do
    for _, id in ipairs(redis.call('ZRANGE', runningKey(b.name), 0, -1)) do
      if redis.call('HGET', ticketKey(id), 'm') == model then running = running + 1 end
    end
    if b.healthy then slots = slots + b.slots end
  end
  modelRows[#modelRows + 1] = { model, redis.call('ZCARD', queueKey(model)), running, slots, fmt(modelServiceMs(model)) }
end
local backendRows = {}
for _, b in ipairs(backends) do
  local f = redis.call('HMGET', backendKey(b.name), 'busy', 'last', 'completed', 'models')
  local busy = tonumber(f[1]) + b.running * (now - tonumber(f[2]))
  backendRows[#backendRows + 1] = { b.name, b.slots, b.running, b.healthy and 1 or 0, tonumber(f[3]), fmt(busy), f[4] }
end
return { redis.call('HGETALL', META), modelRows, backendRows, redis.call('LRANGE', WAITS, 0, -1) }
