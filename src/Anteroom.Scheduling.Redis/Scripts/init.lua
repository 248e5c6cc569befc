-- Makes the store once per prefix, and again after it was lost, and checks that every later replica was given
-- the same backends. Safe to run by several replicas at once: the first makes it, the others find it made.
-- ARGV[A]: an id for the store if this call makes it; ARGV[A + 1]: backend count, then name, slots and
-- newline-separated models of each. Returns the store's id.
local count = tonumber(ARGV[A + 1])
local B = A + 1
redis.call('SET', STORE, ARGV[A], 'NX')
redis.call('HSETNX', META, 'started', now)
local existing = redis.call('LRANGE', BACKENDS, 0, -1)
if #existing == 0 then
  for i = 1, count do
    local name, slots, served = ARGV[B + (3 * i) - 2], ARGV[B + (3 * i) - 1], ARGV[B + (3 * i)]
    redis.call('RPUSH', BACKENDS, name)
    redis.call('HSET', backendKey(name), 'slots', slots, 'models', served, 'healthy', '1', 'trial', '0',
      'running', 0, 'busy', 0, 'last', now, 'completed', 0)
  end
  return redis.call('GET', STORE)
end
local same = #existing == count
for i = 1, count do
  if same then
    local name = ARGV[B + (3 * i) - 2]
    local f = redis.call('HMGET', backendKey(name), 'slots', 'models')
    same = existing[i] == name and f[1] == ARGV[B + (3 * i) - 1] and f[2] == ARGV[B + (3 * i)]
  end
end
if not same then
  return redis.error_reply('The queue under this prefix was created with other backends; every replica must be configured with the same backends.')
end
return redis.call('GET', STORE)
