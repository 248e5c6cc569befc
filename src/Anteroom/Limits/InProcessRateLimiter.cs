using System.Collections.Concurrent;

namespace Anteroom.Limits;

/// <summary>
/// The in-process <see cref="IRateLimiter"/>: per-owner token buckets in memory, for a single gateway. Every
/// operation completes at once.
/// </summary>
/// <remarks>
/// Each owner has its own small entry and lock, so owners never contend with each other. Owners are created on
/// first use and forgotten by <see cref="SweepAsync"/> once both their buckets are full again: a full bucket is exactly
/// what a new owner gets, so forgetting it loses nothing.
/// </remarks>
internal sealed class InProcessRateLimiter(TimeProvider time) : IRateLimiter
{
    private readonly ConcurrentDictionary<string, OwnerBuckets> owners = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public ValueTask<RateDecision> TryAcquireAsync(string owner, RateLimit limit, int tokens) => new(TryAcquire(owner, limit, tokens));

    /// <inheritdoc />
    public ValueTask SettleAsync(string owner, RateLimit limit, int reservedTokens, int actualTokens)
    {
        Settle(owner, limit, reservedTokens, actualTokens);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask ReleaseAsync(string owner, RateLimit limit, int reservedTokens)
    {
        Release(owner, limit, reservedTokens);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<RateState?> GetStateAsync(string owner, RateLimit limit) => new(State(owner, limit));

    /// <inheritdoc />
    public ValueTask<int> SweepAsync() => new(Sweep());

    private RateDecision TryAcquire(string owner, RateLimit limit, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (limit.IsUnlimited)
        {
            return RateDecision.Unlimited;
        }

        return Locked(owner, (limit, tokens, now: time.GetUtcNow()),
            static (entry, s) => entry.TryAcquire(s.limit, s.tokens, s.now));
    }

    private void Settle(string owner, RateLimit limit, int reservedTokens, int actualTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(reservedTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        long refund = (long)reservedTokens - actualTokens;
        if (limit.TokensPerMinute is null || refund == 0)
        {
            return;
        }

        if (refund > 0)
        {
            Refund(owner, limit, requests: 0, refund);
            return;
        }

        Locked(owner, (limit, refund, now: time.GetUtcNow()), static (entry, s) =>
        {
            entry.Charge(s.limit, s.refund, s.now);
            return true;
        });
    }

    private void Release(string owner, RateLimit limit, int reservedTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(reservedTokens);
        if (!limit.IsUnlimited)
        {
            Refund(owner, limit, requests: 1, reservedTokens);
        }
    }

    private RateState? State(string owner, RateLimit limit)
    {
        if (limit.IsUnlimited)
        {
            return null;
        }

        var now = time.GetUtcNow();
        if (owners.TryGetValue(owner, out var entry))
        {
            lock (entry)
            {
                if (!entry.Retired)
                {
                    return entry.State(limit, now);
                }
            }
        }

        return OwnerBuckets.FullState(limit);
    }

    /// <remarks>
    /// An entry is retired under its lock before it is removed, and whoever meets a retired entry takes a fresh
    /// one, so a request racing the sweep can never spend from an entry that is being forgotten.
    /// </remarks>
    private int Sweep()
    {
        var now = time.GetUtcNow();
        int dropped = 0;
        foreach (var (owner, entry) in owners)
        {
            lock (entry)
            {
                if (entry.Retired || !entry.IsFull(now))
                {
                    continue;
                }

                entry.Retired = true;
            }

            owners.TryRemove(KeyValuePair.Create(owner, entry));
            dropped++;
        }

        return dropped;
    }

    /// <summary>Gives back to an owner, if it is remembered: a forgotten owner's buckets are full already.</summary>
    private void Refund(string owner, RateLimit limit, long requests, long tokens)
    {
        if (!owners.TryGetValue(owner, out var entry))
        {
            return;
        }

        lock (entry)
        {
            if (!entry.Retired)
            {
                entry.Refund(limit, requests, tokens, time.GetUtcNow());
            }
        }
    }

    /// <summary>Runs <paramref name="action"/> under the lock of the owner's live entry, creating it if need be.</summary>
    private TResult Locked<TState, TResult>(string owner, TState state, Func<OwnerBuckets, TState, TResult> action)
    {
        while (true)
        {
            var entry = owners.GetOrAdd(owner, static _ => new OwnerBuckets());
            lock (entry)
            {
                if (!entry.Retired)
                {
                    return action(entry, state);
                }
            }

            // A sweep retired this entry; make sure it is gone before taking a fresh one.
            owners.TryRemove(KeyValuePair.Create(owner, entry));
        }
    }

    /// <summary>One owner's buckets, created per dimension on first use. Every member runs under the entry's lock.</summary>
    private sealed class OwnerBuckets
    {
        private TokenBucket? requests;
        private TokenBucket? tokens;

        /// <summary>Set by a sweep that is forgetting this entry; nothing may be spent from it afterwards.</summary>
        public bool Retired { get; set; }

        public RateDecision TryAcquire(RateLimit limit, int amount, DateTimeOffset now)
        {
            var requestBucket = Bucket(ref requests, limit.RequestsPerMinute, now, create: true);
            var tokenBucket = Bucket(ref tokens, limit.TokensPerMinute, now, create: true);
            var requestWait = requestBucket?.Wait(1, now) ?? TimeSpan.Zero;
            var tokenWait = tokenBucket?.Wait(amount, now) ?? TimeSpan.Zero;

            if (requestWait > TimeSpan.Zero || tokenWait > TimeSpan.Zero)
            {
                // Both must allow, so the honest wait is the longer one, and it names the limit that set it.
                string refusedBy = tokenWait > requestWait ? IRateLimiter.TokensPerMinute : IRateLimiter.RequestsPerMinute;
                return new RateDecision(false, refusedBy, Max(requestWait, tokenWait), State(limit, now));
            }

            requestBucket?.Adjust(-1, now);
            tokenBucket?.Adjust(-amount, now);
            return new RateDecision(true, null, TimeSpan.Zero, State(limit, now));
        }

        public void Charge(RateLimit limit, long tokenDelta, DateTimeOffset now) =>
            Bucket(ref tokens, limit.TokensPerMinute, now, create: true)?.Adjust(tokenDelta, now);

        /// <summary>Gives back to the buckets that exist; one that does not is full and has nothing to take back.</summary>
        public void Refund(RateLimit limit, long requestCount, long tokenCount, DateTimeOffset now)
        {
            Bucket(ref requests, limit.RequestsPerMinute, now, create: false)?.Adjust(requestCount, now);
            Bucket(ref tokens, limit.TokensPerMinute, now, create: false)?.Adjust(tokenCount, now);
        }

        public RateState State(RateLimit limit, DateTimeOffset now)
        {
            var requestBucket = Bucket(ref requests, limit.RequestsPerMinute, now, create: false);
            var tokenBucket = Bucket(ref tokens, limit.TokensPerMinute, now, create: false);
            return new RateState(
                limit.RequestsPerMinute,
                Remaining(requestBucket, limit.RequestsPerMinute, now),
                requestBucket?.UntilFull(now) ?? TimeSpan.Zero,
                limit.TokensPerMinute,
                Remaining(tokenBucket, limit.TokensPerMinute, now),
                tokenBucket?.UntilFull(now) ?? TimeSpan.Zero);
        }

        public static RateState FullState(RateLimit limit) => new(
            limit.RequestsPerMinute, limit.RequestsPerMinute ?? 0, TimeSpan.Zero,
            limit.TokensPerMinute, limit.TokensPerMinute ?? 0, TimeSpan.Zero);

        /// <summary>Buckets kept for a dimension no longer limited are ignored here, but must refill before a sweep.</summary>
        public bool IsFull(DateTimeOffset now) =>
            (requests?.IsFull(now) ?? true) && (tokens?.IsFull(now) ?? true);

        /// <summary>
        /// The dimension's bucket under the limit as it is now: null when unlimited, created full on first use
        /// (or left absent, which means the same, when <paramref name="create"/> is false), resized when the
        /// owner's limit has changed since.
        /// </summary>
        private static TokenBucket? Bucket(ref TokenBucket? slot, int? perMinute, DateTimeOffset now, bool create)
        {
            if (perMinute is not { } capacity)
            {
                return null;
            }

            if (slot is null)
            {
                if (create)
                {
                    slot = new TokenBucket(capacity, now);
                }
            }
            else if (slot.Capacity != capacity)
            {
                slot = slot.Resized(capacity, now);
            }

            return slot;
        }

        private static int Remaining(TokenBucket? bucket, int? perMinute, DateTimeOffset now) =>
            bucket is null ? perMinute ?? 0 : (int)Math.Min(bucket.Remaining(now), perMinute ?? 0);

        private static TimeSpan Max(TimeSpan a, TimeSpan b) => a >= b ? a : b;
    }
}
