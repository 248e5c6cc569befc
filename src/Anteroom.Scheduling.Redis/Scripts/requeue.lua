-- Frees the slot and puts the ticket back where it was (Scheduler.Requeue). ARGV[A..]: id, sequence, attempt.
-- Returns 'waiting', 'ended' (it was cancelled meanwhile or used all its attempts) or 'gone'.
sweep()
local id, seq, attempt = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2])
local t = loadTicket(id)
local status = 'gone'
if t and t.seq == seq and t.state == 'r' and t.attempts == attempt then
  releaseSlot(t)
  if t.aborted then
    endTicket(t, CANCELLED)
    tellEnded(t, CANCELLED)
    status = 'ended'
  elseif t.attempts >= maxDispatchAttempts then
    endTicket(t, FAILED)
    tellEnded(t, FAILED)
    status = 'ended'
  else
    -- Back where it was: its old key sorts before everything that arrived after it.
    t.deadline = now + t.maxWait
    redis.call('HSET', ticketKey(id), 'st', 'w', 'ex', t.backend, 'd', t.deadline)
    enqueue(t)
    bump('requeued', 1)
    changed = true
    status = 'waiting'
  end
end
return reply(status)
