-- Lets one ticket through to an unhealthy backend. ARGV[A]: backend.
sweep()
local b = backendByName[ARGV[A]]
if not b.healthy and not b.trial then
  b.trial = true
  redis.call('HSET', backendKey(b.name), 'trial', '1')
  changed = true
end
return reply()
