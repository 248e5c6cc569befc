using System.Globalization;
using Anteroom.Shared;
using StackExchange.Redis;

namespace Anteroom.Limits;

/// <summary>
/// The <see cref="IRateLimiter"/> shared by every replica: each owner's buckets in one Redis hash, so a user's
/// requests and tokens per minute are counted once however the load balancer spreads them.
/// </summary>
/// <remarks>
/// The semantics are <see cref="TokenBucket"/>'s, computed by Lua scripts so that each operation reads, refills and
/// writes an owner's buckets in one atomic step however many replicas act on the same owner. The time comes from
/// the <see cref="TimeProvider"/> as an argument, not from Redis, so the buckets refill on the gateway's clock (and
/// tests drive them with a fake one); a clock that steps back grants nothing.
/// <para>
/// Levels are kept in whole units of 1/60000 of a token at millisecond resolution: a bucket of capacity C regains
/// C units each millisecond, so refill, retry-after and time-until-full stay integer arithmetic, exact in Lua's
/// doubles (a level stays far below 2^53 for any <see cref="int"/> capacity) and written back with every digit.
/// </para>
/// <para>
/// An owner's hash expires a little after its buckets would be full again, which is exactly what a new owner gets,
/// so idle owners vanish from Redis by themselves. Each owner is also indexed by the time its buckets are full,
/// so <see cref="SweepAsync"/> visits only owners that may be full by now.
/// </para>
/// <para>
/// The sweep's script reaches owner keys it reads from the index, which Redis Cluster does not allow; this runs
/// on a single Redis (with replicas or Sentinel), like the rest of Redis mode.
/// </para>
/// </remarks>
internal sealed class RedisRateLimiter(IConnectionMultiplexer redis, string prefix, TimeProvider time) : IRateLimiter
{
    /// <summary>How long after its buckets are full an owner's hash is kept: slack for replicas' clocks that differ a little.</summary>
    private const long ExpirySlackMs = 1000;

    /// <summary>How many index entries one sweep script looks at, so one call never blocks Redis for long.</summary>
    private const int SweepBatch = 500;

    private const string Acquire = "acquire";
    private const string Charge = "charge";
    private const string Refund = "refund";
    private const string State = "state";

    /// <summary>
    /// KEYS: the owner's hash, the index. ARGV: operation, now (ms), requests limit, tokens limit ("" = not
    /// limited), amount, requests to refund, owner. Returns {allowed, refused-by (1 requests, 2 tokens), retry ms,
    /// requests remaining, requests reset ms, tokens remaining, tokens reset ms}.
    /// </summary>
    private const string OwnerScript = """
        local key, index = KEYS[1], KEYS[2]
        local op, now = ARGV[1], tonumber(ARGV[2])
        local limits = { r = tonumber(ARGV[3]), t = tonumber(ARGV[4]) }
        local amount, requests, owner = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
        local U = 60000
        local exists = redis.call('EXISTS', key) == 1
        if op == 'state' and not exists then
          return { 1, 0, 0, limits.r or 0, 0, limits.t or 0, 0 }
        end
        if op == 'refund' and not exists then
          return { 1, 0, 0, 0, 0, 0, 0 }
        end
        local stored = exists and redis.call('HGETALL', key) or {}
        local h = {}
        for i = 1, #stored, 2 do h[stored[i]] = tonumber(stored[i + 1]) end

        local function ceildiv(a, b)
          local q = math.floor(a / b)
          if q * b < a then q = q + 1 elseif (q - 1) * b >= a then q = q - 1 end
          return q
        end
        local function floordiv(a, b)
          local q = math.floor(a / b)
          if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
          return q
        end
        local function refill(d)
          local c, t = h[d .. 'c'], h[d .. 't']
          if now > t then
            h[d .. 'u'] = math.min(h[d .. 'u'] + (now - t) * c, c * U)
            h[d .. 't'] = now
          end
        end
        -- The dimension's bucket under the limit as it is now: false when not limited, created full on first use
        -- (when create), resized when the limit changed (a raise is granted at once, debt is kept).
        local function bucket(d, create)
          local cap = limits[d]
          if cap == nil then return false end
          if h[d .. 'c'] == nil then
            if not create then return false end
            h[d .. 'c'], h[d .. 'u'], h[d .. 't'] = cap, cap * U, now
            return true
          end
          refill(d)
          local c = h[d .. 'c']
          if c ~= cap then
            h[d .. 'u'] = math.min(h[d .. 'u'] + math.max(0, (cap - c) * U), cap * U)
            h[d .. 'c'] = cap
          end
          return true
        end
        local function wait(d, n)
          local c, u = h[d .. 'c'], h[d .. 'u']
          local needed = math.min(n * U, c * U)
          if needed <= u then return 0 end
          return math.max(1, ceildiv(needed - u, c))
        end
        local function adjust(d, delta)
          h[d .. 'u'] = math.min(h[d .. 'u'] + delta * U, h[d .. 'c'] * U)
        end
        local function untilFull(d)
          local c = h[d .. 'c']
          if c == nil then return 0 end
          refill(d)
          return ceildiv(c * U - h[d .. 'u'], c)
        end
        local function remaining(d, has)
          local cap = limits[d] or 0
          if not has then return cap end
          local u = h[d .. 'u']
          if u <= 0 then return 0 end
          return math.min(floordiv(u, U), cap)
        end

        local allowed, refusedBy, retry = 1, 0, 0
        local hasR, hasT
        if op == 'acquire' then
          hasR, hasT = bucket('r', true), bucket('t', true)
          local rw = hasR and wait('r', 1) or 0
          local tw = hasT and wait('t', amount) or 0
          if rw > 0 or tw > 0 then
            allowed, retry = 0, math.max(rw, tw)
            refusedBy = tw > rw and 2 or 1
          else
            if hasR then adjust('r', -1) end
            if hasT then adjust('t', -amount) end
          end
        elseif op == 'charge' then
          hasR, hasT = false, bucket('t', true)
          if hasT then adjust('t', amount) end
        elseif op == 'refund' then
          hasR, hasT = bucket('r', false), bucket('t', false)
          if hasR then adjust('r', requests) end
          if hasT then adjust('t', amount) end
        else
          hasR, hasT = bucket('r', false), bucket('t', false)
        end

        local rReset = hasR and untilFull('r') or 0
        local tReset = hasT and untilFull('t') or 0
        local fields = {}
        for f, v in pairs(h) do
          fields[#fields + 1] = f
          fields[#fields + 1] = string.format('%.17g', v)
        end
        if #fields > 0 then
          redis.call('HSET', key, unpack(fields))
          -- Full again (every bucket kept, limited now or not) is what a forgotten owner gets: expire then.
          local full = math.max(untilFull('r'), untilFull('t'))
          redis.call('PEXPIRE', key, full + tonumber(ARGV[8]))
          redis.call('ZADD', index, now + full, owner)
        end
        return { allowed, refusedBy, retry, remaining('r', hasR), rReset, remaining('t', hasT), tReset }
        """;

    /// <summary>
    /// KEYS: the index. ARGV: now (ms), the owner keys' prefix, batch size. Forgets the owners in the index whose
    /// buckets are all full by now; returns {forgotten, looked at}.
    /// </summary>
    private const string SweepScript = """
        local index, now, prefix = KEYS[1], tonumber(ARGV[1]), ARGV[2]
        local U = 60000
        local due = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
        local forgotten = 0
        for _, owner in ipairs(due) do
          local key = prefix .. owner
          local stored = redis.call('HGETALL', key)
          if #stored == 0 then
            -- Expired by itself already.
            redis.call('ZREM', index, owner)
          else
            local h = {}
            for i = 1, #stored, 2 do h[stored[i]] = tonumber(stored[i + 1]) end
            local full = 0
            for _, d in ipairs({ 'r', 't' }) do
              local c = h[d .. 'c']
              if c ~= nil then
                local u = h[d .. 'u'] + math.max(0, now - h[d .. 't']) * c
                if u < c * U then
                  local missing = c * U - u
                  local q = math.floor(missing / c)
                  if q * c < missing then q = q + 1 end
                  full = math.max(full, q)
                end
              end
            end
            if full == 0 then
              redis.call('DEL', key)
              redis.call('ZREM', index, owner)
              forgotten = forgotten + 1
            else
              redis.call('ZADD', index, now + full, owner)
            end
          end
        end
        return { forgotten, #due }
        """;

    private readonly RedisKey _index = $"{prefix}:rl:owners";
    private readonly string _ownerPrefix = $"{prefix}:rl:o:";

    /// <inheritdoc />
    public async ValueTask<RateDecision> TryAcquireAsync(string owner, RateLimit limit, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (limit.IsUnlimited)
        {
            return RateDecision.Unlimited;
        }

        var result = await RunAsync(Acquire, owner, limit, tokens, requests: 0);
        var state = ToState(limit, result);
        return (long)result[0] == 1
            ? new RateDecision(true, null, TimeSpan.Zero, state)
            : new RateDecision(false, (long)result[1] == 2 ? IRateLimiter.TokensPerMinute : IRateLimiter.RequestsPerMinute,
                TimeSpan.FromMilliseconds((long)result[2]), state);
    }

    /// <inheritdoc />
    public async ValueTask SettleAsync(string owner, RateLimit limit, int reservedTokens, int actualTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(reservedTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        long refund = (long)reservedTokens - actualTokens;
        if (limit.TokensPerMinute is null || refund == 0)
        {
            return;
        }

        // A refund goes only to an owner still remembered (a forgotten one is full); an overrun is charged regardless.
        await RunAsync(refund > 0 ? Refund : Charge, owner, limit, refund, requests: 0);
    }

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(string owner, RateLimit limit, int reservedTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(reservedTokens);
        if (!limit.IsUnlimited)
        {
            await RunAsync(Refund, owner, limit, reservedTokens, requests: 1);
        }
    }

    /// <inheritdoc />
    public async ValueTask<RateState?> GetStateAsync(string owner, RateLimit limit) =>
        limit.IsUnlimited ? null : ToState(limit, await RunAsync(State, owner, limit, 0, requests: 0));

    /// <inheritdoc />
    /// <remarks>
    /// Idle owners expire from Redis by themselves, so this is not what keeps Redis small; it forgets, at the
    /// gateway's clock, owners whose buckets are full but whose expiry (on Redis's clock, with some slack) has not
    /// come yet, and clears index entries of owners that expired. It only looks at owners the index says may be
    /// full by now, a batch per script.
    /// </remarks>
    public async ValueTask<int> SweepAsync()
    {
        int forgotten = 0;
        while (true)
        {
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            var result = (RedisResult[])(await SharedState.CallAsync(redis, () => redis.GetDatabase().ScriptEvaluateAsync(
                SweepScript, [_index], [now, _ownerPrefix, SweepBatch])))!;
            forgotten += (int)(long)result[0];
            if ((long)result[1] < SweepBatch)
            {
                return forgotten;
            }
        }
    }

    private async Task<RedisResult[]> RunAsync(string operation, string owner, RateLimit limit, long amount, long requests)
    {
        RedisValue[] args =
        [
            operation,
            time.GetUtcNow().ToUnixTimeMilliseconds(),
            Limit(limit.RequestsPerMinute),
            Limit(limit.TokensPerMinute),
            amount,
            requests,
            owner,
            ExpirySlackMs,
        ];
        RedisKey[] keys = [_ownerPrefix + owner, _index];
        return (RedisResult[])(await SharedState.CallAsync(redis, () => redis.GetDatabase().ScriptEvaluateAsync(OwnerScript, keys, args)))!;
    }

    private static RedisValue Limit(int? perMinute) =>
        perMinute is { } value ? value.ToString(CultureInfo.InvariantCulture) : RedisValue.EmptyString;

    private static RateState ToState(RateLimit limit, RedisResult[] result) => new(
        limit.RequestsPerMinute,
        (int)(long)result[3],
        TimeSpan.FromMilliseconds((long)result[4]),
        limit.TokensPerMinute,
        (int)(long)result[5],
        TimeSpan.FromMilliseconds((long)result[6]));
}
