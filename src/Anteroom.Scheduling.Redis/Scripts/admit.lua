-- Admits a ticket or refuses it (Scheduler.AdmitLocked). ARGV[A..]: id, owner, model, weight, prompt tokens,
-- max output tokens (''), owner's max in flight (''), owner's max waiting (''), max wait in microseconds, holder
-- grace in microseconds (how long the ticket outlives this replica to be adopted while it waits; 0 for none).
sweep()
local id, owner, model = ARGV[A], ARGV[A + 1], ARGV[A + 2]
local weight, prompt, maxOutput = tonumber(ARGV[A + 3]), tonumber(ARGV[A + 4]), tonumber(ARGV[A + 5])
local ownMaxInFlight, ownMaxWaiting, maxWaitUs = tonumber(ARGV[A + 6]), tonumber(ARGV[A + 7]), tonumber(ARGV[A + 8])

local function refuse(reason, ms, a, b)
  bump('refused', 1)
  bump('refused:' .. reason, 1)
  return reply('refused', reason, fmt(ms or 0), fmt(a or 0), fmt(b or 0))
end

if redis.call('EXISTS', ticketKey(id)) == 1 then return refuse('DuplicateId') end
if not servedBy[model] then return refuse('UnknownModel') end
if healthySlots(model) == 0 then return refuse('NoHealthyBackend') end

redis.call('SADD', USERS, owner)
local uk = userKey(owner)
local u = redis.call('HMGET', uk, 'w', 'r')
local waiting, running = tonumber(u[1] or '0'), tonumber(u[2] or '0')
local maxInFlight = math.min(maxInFlightPerUser, ownMaxInFlight or math.huge)
if waiting + running >= maxInFlight then return refuse('UserInFlightLimit', earliestEndMs(owner), waiting + running, maxInFlight) end
local maxWaiting = math.min(maxWaitingPerUser, ownMaxWaiting or math.huge)
if waiting >= maxWaiting then return refuse('UserQueueFull', earliestDispatchMs(owner), waiting, maxWaiting) end
local total = metaNumber('waiting')
if total >= maxQueueLength then return refuse('QueueFull', nextSlotFreeMs(model), total) end

local _, _, expectedOutput = modelFigures(model)
expectedOutput = math.min(maxOutput or math.huge, expectedOutput)
local cost = prompt + (outputTokenWeight * expectedOutput)
local lane = laneKey(owner, model)
local clock = tonumber(redis.call('HGET', CLOCKS, model) or '0')
local tag = 0
if fair then
  local normalisedCost = cost / weight
  tag = tonumber(redis.call('HGET', uk, 'f:' .. model) or '0')
  if redis.call('ZCARD', lane) == 0 then
    -- Returning to this model: no credit saved while idle, and at most one request's worth of old debt.
    tag = math.min(math.max(tag, clock), clock + normalisedCost)
  end
  -- Never ahead of a ticket that waits alone for its owner: its position must not grow.
  local lastSingle = redis.call('ZREVRANGE', singlesKey(model), 0, 0)[1]
  if lastSingle then tag = math.max(tag, tonumber(redis.call('HGET', ticketKey(idOf(lastSingle)), 'g'))) end
  tag = math.max(tag, clock)
end
local seq = bump('seq', 1)
-- Every ticket with this tag arrived earlier, so it sorts after all of them.
local position = redis.call('ZCOUNT', queueKey(model), '-inf', sortTag(tag)) + 1
local estimate = waitMs(model, position)
if estimate > maxWaitUs / 1000 then return refuse('WaitTooLong', estimate) end

local t = { id = id, owner = owner, model = model, tag = tag, seq = seq, deadline = now + maxWaitUs }
redis.call('HSET', ticketKey(id), 'o', owner, 'm', model, 'w', weight, 'p', prompt, 'x', ARGV[A + 5], 'c', cost, 'g', tag,
  's', seq, 'a', now, 'd', t.deadline, 'mw', maxWaitUs, 'st', 'w', 'n', 0, 'h', replica, 'hg', ARGV[A + 9])
if fair then redis.call('HSET', uk, 'f:' .. model, tag + (cost / weight)) end
redis.call('SADD', heldKey(replica), id)
enqueue(t)
bump('admitted', 1)
changed = true
return reply('admitted', fmt(seq))
