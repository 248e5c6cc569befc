-- Every operation but init starts here. The store's id is made by init: a store that lost its state (Redis came
-- back empty from a restart) has none, and one made again since the caller last looked (by another replica) has
-- another. Either way the store no longer holds the caller's tickets, so nothing runs: the caller recognises the
-- error, runs init again, ends what it held and retries.
if redis.call('GET', STORE) ~= storeId then
  return redis.error_reply('STORELOST The shared queue in Redis was lost (Redis restarted empty) or made again since this replica last used it.')
end
