-- Cancels a ticket by id (and sequence, when its holder asks): a waiting one ends now; a running one is told to
-- abort and ends when its holder ends the lease. ARGV[A..]: id, sequence (''). Returns 1 when it was live.
sweep()
local t = loadTicket(ARGV[A])
local seq = tonumber(ARGV[A + 1])
local found = 0
if t and (not seq or seq == t.seq) then
  found = 1
  if t.state == 'w' then
    endWaiting(t, CANCELLED)
  else
    redis.call('HSET', ticketKey(t.id), 'ab', '1')
    tell(t.holder, 'A\n' .. fmt(t.seq) .. '\n' .. t.id)
  end
end
return reply(found)
