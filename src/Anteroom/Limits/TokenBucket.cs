namespace Anteroom.Limits;

/// <summary>
/// A per-minute allowance that refills continuously: it holds at most <see cref="Capacity"/>, regains
/// <see cref="Capacity"/> every minute (Capacity/60 per second) and starts full. It may go below zero: a request
/// that used more than it reserved leaves a debt that later requests wait out. Not thread-safe; its owner locks.
/// </summary>
/// <remarks>
/// Why our own and not <c>System.Threading.RateLimiting</c>: its replenishing limiters refill on their own timer
/// and clock rather than an injected <see cref="TimeProvider"/>, and a lease cannot be charged what a request
/// actually used after it ends. This bucket reads the time only when told it, and can be refunded or overdrawn.
/// <para>
/// The level is kept exactly, in units of 1/<see cref="TimeSpan.TicksPerMinute"/> of a token: each elapsed tick
/// adds <see cref="Capacity"/> units. Refill, retry-after and time-until-full are then integer arithmetic, so a
/// caller who waits the reported retry-after is admitted, with no floating-point drift either way.
/// </para>
/// </remarks>
internal sealed class TokenBucket
{
    private const long UnitsPerToken = TimeSpan.TicksPerMinute;
    private const long LongestWait = long.MaxValue - TimeSpan.TicksPerMillisecond;

    private readonly Int128 fullUnits;
    private Int128 units;
    private DateTimeOffset updated;

    public TokenBucket(long capacity, DateTimeOffset now)
        : this(capacity, (Int128)capacity * UnitsPerToken, now)
    {
    }

    private TokenBucket(long capacity, Int128 units, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        fullUnits = (Int128)capacity * UnitsPerToken;
        this.units = Int128.Min(units, fullUnits);
        updated = now;
    }

    /// <summary>The most it holds, which is also what it regains per minute.</summary>
    public long Capacity { get; }

    /// <summary>What it holds now, fractions included; negative while in debt.</summary>
    public double Level(DateTimeOffset now)
    {
        Refill(now);
        return (double)units / UnitsPerToken;
    }

    /// <summary>Whole tokens available now, not below zero (what a caller may still spend).</summary>
    public long Remaining(DateTimeOffset now)
    {
        Refill(now);
        return units <= 0 ? 0 : (long)(units / UnitsPerToken);
    }

    /// <summary>How long until <paramref name="amount"/> can be taken; zero if it can be taken now.</summary>
    /// <remarks>
    /// An amount above capacity waits only for a full bucket, so a request larger than a minute's allowance can
    /// still run (and leave a debt) instead of never.
    /// </remarks>
    public TimeSpan Wait(long amount, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(amount);
        Refill(now);
        Int128 needed = Int128.Min((Int128)amount * UnitsPerToken, fullUnits);
        return needed <= units ? TimeSpan.Zero : WholeMilliseconds(TicksToRefill(needed - units));
    }

    /// <summary>
    /// Takes <paramref name="amount"/> if it is there (see <see cref="Wait"/> for amounts above capacity, which are
    /// charged in full); otherwise takes nothing and reports how long until it will be there, in whole
    /// milliseconds rounded up.
    /// </summary>
    public bool TryTake(long amount, DateTimeOffset now, out TimeSpan retryAfter)
    {
        retryAfter = Wait(amount, now);
        if (retryAfter > TimeSpan.Zero)
        {
            return false;
        }

        units -= (Int128)amount * UnitsPerToken;
        return true;
    }

    /// <summary>
    /// Gives back (positive, never above capacity) or charges more (negative, into debt if need be): how a
    /// reservation is corrected once the actual usage is known.
    /// </summary>
    public void Adjust(long delta, DateTimeOffset now)
    {
        Refill(now);
        units = Int128.Min(units + (Int128)delta * UnitsPerToken, fullUnits);
    }

    /// <summary>How long until the bucket is full again, rounded up to the tick.</summary>
    public TimeSpan UntilFull(DateTimeOffset now)
    {
        Refill(now);
        return TimeSpan.FromTicks(TicksToRefill(fullUnits - units));
    }

    public bool IsFull(DateTimeOffset now)
    {
        Refill(now);
        return units == fullUnits;
    }

    /// <summary>
    /// The same bucket under a new capacity, for when an owner's limit changes: a raise is granted at once (what
    /// was used stays used), a cut keeps what is left up to the new capacity, and debt is kept either way.
    /// </summary>
    public TokenBucket Resized(long capacity, DateTimeOffset now)
    {
        Refill(now);
        Int128 raise = Int128.Max(0, (Int128)(capacity - Capacity) * UnitsPerToken);
        return new TokenBucket(capacity, units + raise, now);
    }

    private void Refill(DateTimeOffset now)
    {
        // A clock that steps back grants nothing and does not move the mark back either.
        if (now <= updated)
        {
            return;
        }

        Int128 gained = (Int128)(now - updated).Ticks * Capacity;
        units = Int128.Min(units + gained, fullUnits);
        updated = now;
    }

    /// <summary>Ticks until <paramref name="missing"/> units have refilled, rounded up; capped where TimeSpan ends.</summary>
    private long TicksToRefill(Int128 missing) =>
        missing <= 0 ? 0 : (long)Int128.Min((missing + Capacity - 1) / Capacity, LongestWait);

    private static TimeSpan WholeMilliseconds(long ticks) =>
        TimeSpan.FromMilliseconds(Math.Max(1, (ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond));
}
