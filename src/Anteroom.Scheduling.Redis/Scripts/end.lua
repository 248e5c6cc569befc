-- Ends a running ticket as its holder ended the lease (Scheduler.EndRunning). ARGV[A..]: id, sequence, attempt,
-- outcome, prompt tokens, output tokens ('' without a sample), first token instant ('' when none came).
-- Does nothing when the ticket no longer runs that attempt: its replica's lease ran out and it was ended already.
sweep()
local id, seq, attempt, outcome = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]), ARGV[A + 3]
local t = loadTicket(id)
if t and t.seq == seq and t.state == 'r' and t.attempts == attempt then
  releaseSlot(t)
  local output = tonumber(ARGV[A + 5])
  if outcome == COMPLETED and output then
    redis.call('HINCRBY', backendKey(t.backend), 'completed', 1)
    local firstToken = tonumber(ARGV[A + 6]) or now
    record(t.backend, t.model, (firstToken - t.started) / 1000, (now - firstToken) / 1000, output)
    if fair then
      -- Charge what was really served: the counter moves by the difference from the estimate, but never
      -- below the owner's waiting tickets, so the owner's order stays FIFO.
      local uk = userKey(t.owner)
      local field = 'f:' .. t.model
      local actual = tonumber(ARGV[A + 4]) + (outputTokenWeight * output)
      local corrected = tonumber(redis.call('HGET', uk, field) or '0') + ((actual - t.cost) / t.weight)
      redis.call('HSET', uk, field, math.max(corrected, lastWaitingTag(t.owner, t.model)))
    end
  end
  endTicket(t, outcome)
end
return reply()
