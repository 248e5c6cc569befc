-- A waiting ticket's position, its queue's length and its estimated wait, or nil. ARGV[A]: id.
local id = ARGV[A]
local f = redis.call('HMGET', ticketKey(id), 'st', 'm', 's')
if f[1] ~= 'w' then return false end
local queue = queueKey(f[2])
local position = redis.call('ZRANK', queue, memberOf(tonumber(f[3]), id)) + 1
return { position, redis.call('ZCARD', queue), fmt(waitMs(f[2], position)) }
