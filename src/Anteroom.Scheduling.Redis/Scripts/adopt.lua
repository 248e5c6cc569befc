-- Takes over an orphan (a waiting ticket whose holder's replica died, within its grace): the caller holds it from
-- now on. ARGV[A]: id. Returns 'adopted' and what the caller needs to mirror the ticket — owner, model, weight,
-- prompt tokens, max output tokens (''), sequence, arrival, deadline, max wait, attempts, first dispatch (''), last
-- backend (''), grace — or 'none' when the id names no orphan. The reply's dispatch may start it at once, with the
-- caller told in the reply's events.
sweep()
local id = ARGV[A]
local t = loadTicket(id)
if not t or t.state ~= 'w' or t.holder then return reply('none') end
redis.call('ZREM', ORPHANS, id)
redis.call('HSET', ticketKey(id), 'h', replica)
redis.call('SADD', heldKey(replica), id)
local f = redis.call('HMGET', ticketKey(id), 'p', 'x', 'hg')
return reply('adopted', t.owner, t.model, fmt(t.weight), f[1], f[2], fmt(t.seq), fmt(t.arrived), fmt(t.deadline),
  fmt(t.maxWait), fmt(t.attempts), t.firstDispatched and fmt(t.firstDispatched) or '', t.backend or '', f[3] or '0')
