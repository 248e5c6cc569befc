-- Registers the backends once per prefix and checks that every later replica was given the same ones.
-- ARGV[A]: backend count, then name, slots and newline-separated models of each.
redis.call('HSETNX', META, 'started', now)
local count = tonumber(ARGV[A])
local existing = redis.call('LRANGE', BACKENDS, 0, -1)
if #existing == 0 then
  for i = 1, count do
    local name, slots, served = ARGV[A + (3 * i) - 2], ARGV[A + (3 * i) - 1], ARGV[A + (3 * i)]
    redis.call('RPUSH', BACKENDS, name)
    redis.call('HSET', backendKey(name), 'slots', slots, 'models', served, 'healthy', '1', 'trial', '0',
      'running', 0, 'busy', 0, 'last', now, 'completed', 0)
  end
  return 1
end
local same = #existing == count
for i = 1, count do
  if same then
    local name = ARGV[A + (3 * i) - 2]
    local f = redis.call('HMGET', backendKey(name), 'slots', 'models')
    same = existing[i] == name and f[1] == ARGV[A + (3 * i) - 1] and f[2] == ARGV[A + (3 * i)]
  end
end
if not same then
  return redis.error_reply('The queue under this prefix was created with other backends; every replica must be configured with the same backends.')
end
return 1
