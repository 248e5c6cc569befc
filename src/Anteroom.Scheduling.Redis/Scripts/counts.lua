-- The counters, flat as HGETALL gives them.
return redis.call('HGETALL', META)
