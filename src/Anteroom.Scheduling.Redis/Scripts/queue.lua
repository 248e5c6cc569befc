-- The fair queue in Redis: what every operation script starts with, followed by estimates.lua (the library's second
-- half, split off by concern). Each operation is this library followed by its own few lines, run by Redis as one
-- atomic script, so a decision and its effect are never separated by another replica's operation. The semantics are
-- those of the in-process Scheduler (see its remarks): start-time fair queuing over per-user virtual token counters
-- per model, FIFO within a user, a ticket that waits alone for its owner never moved back, work-conserving
-- dispatch.
--
-- Orphans: a waiting ticket admitted with a holder grace ('hg', microseconds) outlives its holder's replica. When
-- that replica's lease runs out the ticket loses its holder ('h') and waits in ORPHANS, scored by the end of its
-- grace, keeping its place, its tag and its deadline; adopt.lua gives it a new holder. Dispatch passes over it
-- meanwhile (no replica would take the slot), so a ticket behind it, even its own owner's, may start first.
--
-- Time comes from the caller (ARGV[1], microseconds since the Unix epoch, exact in a Lua number for centuries),
-- never from Redis's clock, so every replica's TimeProvider, or a test's fake one, drives it.
--
-- Doubles are handed to redis.call as Lua numbers (Redis writes them with full precision) and returned to the
-- caller as strings made by fmt: Redis would truncate a returned number to an integer.

local P = KEYS[1]
local now = tonumber(ARGV[1])
local replica = ARGV[2]
local fair = ARGV[3] == '1'
local maxQueueLength = tonumber(ARGV[4])
local maxWaitingPerUser = tonumber(ARGV[5])
local maxInFlightPerUser = tonumber(ARGV[6])
local maxDispatchAttempts = tonumber(ARGV[7])
local outputTokenWeight = tonumber(ARGV[8])
local smoothing = tonumber(ARGV[9])
local priorTtftMs = tonumber(ARGV[10])
local priorTps = tonumber(ARGV[11])
local priorOutput = tonumber(ARGV[12])
local waitWindow = tonumber(ARGV[13])
local leaseUs = tonumber(ARGV[14])
local noBackendRetryMs = tonumber(ARGV[15])
-- The id of the store the caller's tickets live in, as init last told it (store.lua checks it).
local storeId = ARGV[16]
-- The operation's own arguments start here.
local A = 17

local COMPLETED, FAILED, CANCELLED, TIMEDOUT = '0', '1', '2', '3'

local META = P .. 'meta'
-- The store's id, made by init (store.lua).
local STORE = P .. 'store'
local BACKENDS = P .. 'backends'
local REPLICAS = P .. 'replicas'
local DEADLINES = P .. 'deadlines'
local ESTIMATES = P .. 'estimates'
local WAITS = P .. 'waits'
local CLOCKS = P .. 'clocks'
local USERS = P .. 'users'
local ORPHANS = P .. 'orphans'
local CHANGES = P .. 'changes'

local function ticketKey(id) return P .. 'ticket:' .. id end
local function queueKey(model) return P .. 'queue:' .. model end
local function singlesKey(model) return P .. 'singles:' .. model end
-- Two free-form names in one key: the model's length first keeps every pair apart.
local function laneKey(owner, model) return P .. 'lane:' .. #model .. ':' .. model .. ':' .. owner end
local function userKey(owner) return P .. 'user:' .. owner end
local function runningKey(backend) return P .. 'running:' .. backend end
local function backendKey(backend) return P .. 'backend:' .. backend end
local function heldKey(holder) return P .. 'held:' .. holder end
local function holderChannel(holder) return P .. 'replica:' .. holder end

local function fmt(x)
  if x == math.huge then return 'inf' elseif x == -math.huge then return '-inf' end
  return string.format('%.17g', x)
end

-- NaN, which no comparison orders and no sorted set takes, sorts as negative infinity (as TicketTree.SortTag).
local function sortTag(tag)
  if tag ~= tag then return -math.huge end
  return tag
end

-- Queue members are the arrival sequence, zero-padded so that equal tags sort by arrival, then the id.
local function memberOf(seq, id) return string.format('%016d', seq) .. id end
local function idOf(member) return string.sub(member, 17) end

local function bump(field, by) return redis.call('HINCRBY', META, field, by or 1) end
local function metaNumber(field) return tonumber(redis.call('HGET', META, field) or '0') end

-- The backends as stored by the init script, in their configured order.
local backends, backendByName, servedBy, models = {}, {}, {}, {}
do
  local names = redis.call('LRANGE', BACKENDS, 0, -1)
  for i, name in ipairs(names) do
    local f = redis.call('HMGET', backendKey(name), 'slots', 'models', 'healthy', 'trial', 'running')
    local b = { name = name, slots = tonumber(f[1]), models = {}, healthy = f[3] == '1', trial = f[4] == '1', running = tonumber(f[5]) }
    for model in string.gmatch(f[2], '[^\n]+') do
      b.models[#b.models + 1] = model
      if not servedBy[model] then
        servedBy[model] = {}
        models[#models + 1] = model
      end
      table.insert(servedBy[model], b)
    end
    backends[i] = b
    backendByName[name] = b
  end
end

local function free(b)
  if b.healthy then return b.slots - b.running end
  if b.trial then return math.min(1, b.slots - b.running) end
  return 0
end

-- The slots new tickets may count on: all when healthy, the one trial slot on trial, none otherwise.
local function servingSlots(b)
  if b.healthy then return b.slots end
  if b.trial then return 1 end
  return 0
end

local function healthySlots(model)
  local slots = 0
  for _, b in ipairs(servedBy[model]) do slots = slots + servingSlots(b) end
  return slots
end

-- Adds the slot-time used since the backend's last change; call before its running count changes.
local function account(b)
  local f = redis.call('HMGET', backendKey(b.name), 'busy', 'last')
  redis.call('HSET', backendKey(b.name), 'busy', tonumber(f[1]) + b.running * (now - tonumber(f[2])), 'last', now)
end

local function loadTicket(id)
  local f = redis.call('HMGET', ticketKey(id), 'o', 'm', 'w', 'c', 'g', 's', 'a', 'd', 'mw', 'st', 'b', 'n', 'fd', 'sa', 'ab', 'h')
  if not f[1] then return nil end
  return {
    id = id, owner = f[1], model = f[2], weight = tonumber(f[3]), cost = tonumber(f[4]), tag = tonumber(f[5]),
    seq = tonumber(f[6]), arrived = tonumber(f[7]), deadline = tonumber(f[8]), maxWait = tonumber(f[9]), state = f[10],
    backend = f[11] or nil, attempts = tonumber(f[12]), firstDispatched = tonumber(f[13]), started = tonumber(f[14]),
    aborted = f[15] == '1', holder = f[16],
  }
end

-- Announcements to a ticket's holder: returned to the caller when it holds the ticket, published to the holding
-- replica otherwise. The id comes last, so it may hold any character.
local events = {}
local changed = false

local function tell(holder, message)
  -- An orphan has no holder to tell: what happens to it is read by id, by whoever adopts it or asks for it.
  if not holder then return end
  if holder == replica then
    events[#events + 1] = message
  else
    redis.call('PUBLISH', holderChannel(holder), message)
  end
end

local function tellEnded(t, outcome)
  tell(t.holder, 'E\n' .. fmt(t.seq) .. '\n' .. outcome .. '\n' .. fmt(now) .. '\n' .. t.id)
end

-- The tag of the user's newest waiting ticket for the model (the largest: tags only grow), or -inf.
local function lastWaitingTag(owner, model)
  local last = redis.call('ZREVRANGE', laneKey(owner, model), 0, 0)[1]
  if not last then return -math.huge end
  return tonumber(redis.call('HGET', ticketKey(idOf(last)), 'g'))
end

-- One user's waiting tickets for one model, in the model queue's order, and the model's set of tickets that wait
-- alone for their owner kept in step.
local function laneAdd(t, member, score)
  local lane = laneKey(t.owner, t.model)
  local count = redis.call('ZCARD', lane)
  if count == 1 then redis.call('ZREM', singlesKey(t.model), redis.call('ZRANGE', lane, 0, 0)[1]) end
  redis.call('ZADD', lane, score, member)
  if count == 0 then redis.call('ZADD', singlesKey(t.model), score, member) end
  redis.call('HINCRBY', userKey(t.owner), 'w', 1)
end

local function laneRemove(t, member)
  local lane = laneKey(t.owner, t.model)
  local count = redis.call('ZCARD', lane)
  redis.call('ZREM', lane, member)
  if count == 1 then
    redis.call('ZREM', singlesKey(t.model), member)
  elseif count == 2 then
    local rest = redis.call('ZRANGE', lane, 0, 0, 'WITHSCORES')
    redis.call('ZADD', singlesKey(t.model), rest[2], rest[1])
  end
  redis.call('HINCRBY', userKey(t.owner), 'w', -1)
end

local function enqueue(t)
  local member = memberOf(t.seq, t.id)
  local score = sortTag(t.tag)
  redis.call('ZADD', queueKey(t.model), score, member)
  laneAdd(t, member, score)
  redis.call('ZADD', DEADLINES, t.deadline, t.id)
  bump('waiting', 1)
end

local function dequeue(t)
  local member = memberOf(t.seq, t.id)
  redis.call('ZREM', queueKey(t.model), member)
  laneRemove(t, member)
  redis.call('ZREM', DEADLINES, t.id)
  bump('waiting', -1)
end

local function endTicket(t, outcome)
  redis.call('DEL', ticketKey(t.id))
  if t.holder then
    redis.call('SREM', heldKey(t.holder), t.id)
  else
    redis.call('ZREM', ORPHANS, t.id)
  end
  bump('ended' .. outcome, 1)
  if not fair then
    -- Under FIFO an idle user has no state worth keeping.
    local u = redis.call('HMGET', userKey(t.owner), 'w', 'r')
    if tonumber(u[1] or '0') == 0 and tonumber(u[2] or '0') == 0 then
      redis.call('DEL', userKey(t.owner))
      redis.call('SREM', USERS, t.owner)
    end
  end
  changed = true
end

local function endWaiting(t, outcome)
  dequeue(t)
  if fair then
    local uk = userKey(t.owner)
    local field = 'f:' .. t.model
    if tonumber(redis.call('HGET', uk, field)) == t.tag + (t.cost / t.weight) then
      -- It was the owner's latest ticket and never ran: take back what it had booked.
      redis.call('HSET', uk, field, t.tag)
    end
  end
  endTicket(t, outcome)
  tellEnded(t, outcome)
end

local function releaseSlot(t)
  local b = backendByName[t.backend]
  account(b)
  b.running = b.running - 1
  redis.call('HSET', backendKey(b.name), 'running', b.running)
  redis.call('ZREM', runningKey(b.name), t.id)
  redis.call('HINCRBY', userKey(t.owner), 'r', -1)
  bump('running', -1)
end

local function start(t, b)
  dequeue(t)
  local clock = tonumber(redis.call('HGET', CLOCKS, t.model) or '0')
  if t.tag > clock then redis.call('HSET', CLOCKS, t.model, t.tag) end
  if not t.firstDispatched then
    t.firstDispatched = now
    redis.call('LPUSH', WAITS, (now - t.arrived) / 1000)
    redis.call('LTRIM', WAITS, 0, waitWindow - 1)
  end
  account(b)
  -- A trial lets one ticket through, not a burst: this one uses it up, and its lease says so.
  local trial = b.trial
  b.trial = false
  b.running = b.running + 1
  redis.call('HSET', backendKey(b.name), 'running', b.running, 'trial', '0')
  -- Scored by dispatch order, so listings and estimates see running tickets in the order they started.
  redis.call('ZADD', runningKey(b.name), bump('dispatches', 1), t.id)
  redis.call('HINCRBY', userKey(t.owner), 'r', 1)
  local running = bump('running', 1)
  if running > metaNumber('peak') then redis.call('HSET', META, 'peak', running) end
  t.attempts = t.attempts + 1
  redis.call('HSET', ticketKey(t.id), 'st', 'r', 'b', b.name, 'n', t.attempts, 'fd', t.firstDispatched, 'sa', now)
  tell(t.holder, 'D\n' .. fmt(t.seq) .. '\n' .. fmt(t.attempts) .. '\n' .. (trial and '1' or '0') .. '\n' .. fmt(now) .. '\n'
    .. fmt(t.firstDispatched) .. '\n' .. b.name .. '\n' .. t.id)
  changed = true
end

local function otherFreeBackend(model, excluded)
  for _, b in ipairs(servedBy[model]) do
    if b.name ~= excluded and free(b) > 0 then return true end
  end
  return false
end

local function lessLoaded(a, b) return a.running / a.slots < b.running / b.slots end

-- The first ticket in the model's queue that a replica holds, as ZRANGE ... WITHSCORES gives it. Orphans keep their
-- place but are passed over. Every member skipped is an orphan, so this reads at most the orphans and one more;
-- with none, as nearly always, it is the one ZRANGE it was before orphans.
local function headOf(model, orphans)
  local queue = queueKey(model)
  if orphans == 0 then return redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES') end
  local from = 0
  while true do
    local r = redis.call('ZRANGE', queue, from, from + 15, 'WITHSCORES')
    for i = 1, #r, 2 do
      if not redis.call('ZSCORE', ORPHANS, idOf(r[i])) then return { r[i], r[i + 1] } end
    end
    if #r < 32 then return {} end
    from = from + 16
  end
end

-- Gives free slots to waiting tickets until no free slot has an eligible ticket: work-conserving.
local function dispatch()
  local waiting = metaNumber('waiting')
  if waiting == 0 then return end
  -- Orphans are waiting tickets too: when they are all that waits, nothing can start.
  local orphans = redis.call('ZCARD', ORPHANS)
  if waiting == orphans then return end
  while true do
    local best, bestBackend = nil, nil
    local heads = {}
    for _, b in ipairs(backends) do
      if free(b) > 0 then
        for _, model in ipairs(b.models) do
          local head = heads[model]
          if head == nil then
            local r = headOf(model, orphans)
            head = false
            if r[1] then
              local id = idOf(r[1])
              head = { id = id, score = tonumber(r[2]), seq = tonumber(string.sub(r[1], 1, 16)), excluded = redis.call('HGET', ticketKey(id), 'ex') }
            end
            heads[model] = head
          end
          if head and not (head.excluded == b.name and otherFreeBackend(model, b.name)) then
            local order = 0
            if best == nil then
              order = -1
            elseif head.score ~= best.score then
              order = head.score < best.score and -1 or 1
            elseif head.seq ~= best.seq then
              order = head.seq < best.seq and -1 or 1
            end
            if order < 0 or (order == 0 and lessLoaded(b, bestBackend)) then
              best, bestBackend = head, b
            end
          end
        end
      end
    end
    if best == nil then return end
    start(loadTicket(best.id), bestBackend)
  end
end

-- A waiting ticket whose holder's replica died, kept for adoption until now + its grace. The old holder is told the
-- ticket ended for it, as it would be told were the ticket cancelled: a replica that only stalled past its lease
-- must not wait on for a dispatch that will go to the adopter.
local function orphan(t, grace)
  redis.call('HDEL', ticketKey(t.id), 'h')
  redis.call('ZADD', ORPHANS, now + grace, t.id)
  tellEnded(t, CANCELLED)
end

-- Renews the caller's lease on its slots, then ends what time has ended: the tickets of replicas whose lease
-- ran out (running ones failed, their slots freed; waiting ones cancelled, their holder is gone, or orphaned when
-- they have a grace), orphans whose grace ran out, and waiting tickets past their deadline.
local function sweep()
  if replica ~= '' then redis.call('ZADD', REPLICAS, now + leaseUs, replica) end
  for _, dead in ipairs(redis.call('ZRANGEBYSCORE', REPLICAS, '-inf', now)) do
    if dead ~= replica then
      redis.call('ZREM', REPLICAS, dead)
      for _, id in ipairs(redis.call('SMEMBERS', heldKey(dead))) do
        local t = loadTicket(id)
        if t and t.state == 'r' then
          releaseSlot(t)
          endTicket(t, FAILED)
          tellEnded(t, FAILED)
        elseif t then
          local grace = tonumber(redis.call('HGET', ticketKey(id), 'hg') or '0')
          if grace > 0 then orphan(t, grace) else endWaiting(t, CANCELLED) end
        end
      end
      redis.call('DEL', heldKey(dead))
    end
  end
  local expired = redis.call('ZRANGEBYSCORE', ORPHANS, '-inf', now, 'WITHSCORES')
  for i = 1, #expired, 2 do
    local t = loadTicket(expired[i])
    if t then
      -- Whichever came first: a deadline before the grace's end is a timeout, as it would have been at its time.
      endWaiting(t, t.deadline <= tonumber(expired[i + 1]) and TIMEDOUT or CANCELLED)
    else
      redis.call('ZREM', ORPHANS, expired[i])
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', now)) do
    local t = loadTicket(id)
    if t and t.state == 'w' then
      endWaiting(t, TIMEDOUT)
    else
      redis.call('ZREM', DEADLINES, id)
    end
  end
end

-- Every changing operation ends here: dispatch whatever can run now, announce a change to every replica, and
-- return { changed, the caller's events, the operation's own results... }.
local function reply(...)
  dispatch()
  if changed then redis.call('PUBLISH', CHANGES, replica .. '\n' .. fmt(now)) end
  return { changed and 1 or 0, events, ... }
end
