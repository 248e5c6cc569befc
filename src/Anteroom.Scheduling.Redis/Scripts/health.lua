-- Marks a backend healthy or not; withdraws an unused trial either way. ARGV[A..]: backend, '1' or '0'.
sweep()
local b = backendByName[ARGV[A]]
local healthy = ARGV[A + 1] == '1'
if b.healthy ~= healthy or b.trial then
  account(b)
  b.healthy, b.trial = healthy, false
  redis.call('HSET', backendKey(b.name), 'healthy', healthy and '1' or '0', 'trial', '0')
  changed = true
end
return reply()
