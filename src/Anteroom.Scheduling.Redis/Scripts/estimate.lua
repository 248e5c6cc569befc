-- How long an arrival for the model would wait now, or nil when no healthy backend serves it. ARGV[A]: model.
local model = ARGV[A]
if not servedBy[model] or healthySlots(model) == 0 then return false end
return fmt(waitMs(model, redis.call('ZCARD', queueKey(model)) + 1))
