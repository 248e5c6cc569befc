-- Drops the accounts of users who hold no ticket and owe no service on any model. Returns how many.
sweep()
local forgotten = 0
for _, owner in ipairs(redis.call('SMEMBERS', USERS)) do
  local uk = userKey(owner)
  local f = redis.call('HGETALL', uk)
  local keep = false
  for i = 1, #f, 2 do
    local field, value = f[i], tonumber(f[i + 1])
    if field == 'w' or field == 'r' then
      keep = keep or value ~= 0
    elseif string.sub(field, 1, 2) == 'f:' then
      keep = keep or value > tonumber(redis.call('HGET', CLOCKS, string.sub(field, 3)) or '0')
    end
  end
  if not keep then
    redis.call('DEL', uk)
    redis.call('SREM', USERS, owner)
    forgotten = forgotten + 1
  end
end
return reply(forgotten)
