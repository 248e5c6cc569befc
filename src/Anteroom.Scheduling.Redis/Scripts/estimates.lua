-- The fair queue in Redis, second half of the library: estimates. Measured service figures per backend and model,
-- when a waiting ticket should start, and what a refusal tells its caller to wait. Read after queue.lua, whose
-- locals it uses; nothing in queue.lua uses it.

-- Measured service figures per backend and model (ServiceEstimator): time to first token, tokens per second,
-- output tokens, as exponentially weighted averages.
local function figures(backend, model)
  local v = redis.call('HGET', ESTIMATES, backend .. '\n' .. model)
  if not v then return priorTtftMs, priorTps, priorOutput end
  local ttft, tps, output = string.match(v, '^(%S+) (%S+) (%S+)$')
  return tonumber(ttft), tonumber(tps), tonumber(output)
end

local function record(backend, model, ttftMs, generatingMs, outputTokens)
  local field = backend .. '\n' .. model
  local tps = nil
  -- A one-token answer says nothing about speed; keep the old figure.
  if outputTokens > 1 and generatingMs > 0 then tps = (outputTokens - 1) / (generatingMs / 1000) end
  local ttft, speed, output
  if not redis.call('HGET', ESTIMATES, field) then
    ttft, speed, output = ttftMs, tps or priorTps, outputTokens
  else
    local oldTtft, oldTps, oldOutput = figures(backend, model)
    ttft = oldTtft + smoothing * (ttftMs - oldTtft)
    speed = oldTps
    if tps then speed = oldTps + smoothing * (tps - oldTps) end
    output = oldOutput + smoothing * (outputTokens - oldOutput)
  end
  redis.call('HSET', ESTIMATES, field, fmt(ttft) .. ' ' .. fmt(speed) .. ' ' .. fmt(output))
end

local function serviceMs(ttft, tps, output) return ttft + (1000 * output / tps) end

-- Slot-weighted mean over the healthy backends serving the model.
local function modelFigures(model)
  local slots = healthySlots(model)
  local weight, ttft, tps, output = 0, 0, 0, 0
  for _, b in ipairs(servedBy[model]) do
    if not (servingSlots(b) == 0 and slots > 0) then
      local t, s, o = figures(b.name, model)
      ttft = ttft + t * b.slots
      tps = tps + s * b.slots
      output = output + o * b.slots
      weight = weight + b.slots
    end
  end
  return ttft / weight, tps / weight, output / weight
end

local function modelServiceMs(model)
  local ttft, tps, output = modelFigures(model)
  return serviceMs(ttft, tps, output)
end

-- How much longer a running ticket should hold its slot, by what is measured now.
local function remainingMs(id, backend)
  local f = redis.call('HMGET', ticketKey(id), 'm', 'x', 'sa')
  local ttft, tps, output = figures(backend, f[1])
  local expected = math.min(tonumber(f[2]) or math.huge, output)
  return math.max(serviceMs(ttft, tps, expected) - ((now - tonumber(f[3])) / 1000), 0)
end

-- When the ticket at this position should start (WaitEstimates.Wait): the slots serving the model free up at
-- their running tickets' expected ends, and every later round of dispatches takes one mean service time.
local function waitMs(model, position)
  local slots = healthySlots(model)
  if slots == 0 then return math.huge end
  local running = 0
  for _, b in ipairs(servedBy[model]) do
    if servingSlots(b) > 0 then running = running + b.running end
  end
  local busy = math.min(running, slots)
  local ahead = position - 1
  local round = math.floor(ahead / slots)
  local rank = (ahead % slots) - (slots - busy)
  local roundsMs = 0
  if round > 0 then roundsMs = round * modelServiceMs(model) end
  if rank < 0 then return roundsMs end
  local freeAt = {}
  for _, b in ipairs(servedBy[model]) do
    if servingSlots(b) > 0 then
      for _, id in ipairs(redis.call('ZRANGE', runningKey(b.name), 0, -1)) do
        if #freeAt == busy then break end
        freeAt[#freeAt + 1] = remainingMs(id, b.name)
      end
    end
  end
  table.sort(freeAt)
  return freeAt[rank + 1] + roundsMs
end

-- When a slot for the model frees up: what a full queue tells its callers to wait.
local function nextSlotFreeMs(model)
  local next = waitMs(model, 1)
  if next > 0 then return next end
  return modelServiceMs(model) / math.max(1, healthySlots(model))
end

-- When the first of the user's waiting tickets should start: what a full per-user queue tells it.
local function earliestDispatchMs(owner)
  local earliest = math.huge
  for _, model in ipairs(models) do
    local first = redis.call('ZRANGE', laneKey(owner, model), 0, 0)[1]
    if first then
      earliest = math.min(earliest, waitMs(model, redis.call('ZRANK', queueKey(model), first) + 1))
    end
  end
  if earliest == math.huge then return noBackendRetryMs end
  return earliest
end

-- When the first of the user's tickets should end: what the per-user in-flight limit tells it.
local function earliestEndMs(owner)
  local earliest = math.huge
  for _, b in ipairs(backends) do
    for _, id in ipairs(redis.call('ZRANGE', runningKey(b.name), 0, -1)) do
      if redis.call('HGET', ticketKey(id), 'o') == owner then
        earliest = math.min(earliest, remainingMs(id, b.name))
      end
    end
  end
  if earliest ~= math.huge then return earliest end
  -- Everything the user has is waiting: the first of it must start and finish.
  for _, model in ipairs(models) do
    if redis.call('ZCARD', laneKey(owner, model)) > 0 then
      return earliestDispatchMs(owner) + modelServiceMs(model)
    end
  end
  return noBackendRetryMs
end
