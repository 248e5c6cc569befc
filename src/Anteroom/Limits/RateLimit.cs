namespace Anteroom.Limits;

/// <summary>A tier's per-minute limits; a null dimension is not limited.</summary>
internal sealed record RateLimit(int? RequestsPerMinute, int? TokensPerMinute)
{
    public static readonly RateLimit Unlimited = new(null, null);

    public bool IsUnlimited => RequestsPerMinute is null && TokensPerMinute is null;
}

/// <summary>
/// Where an owner stands, for the <c>x-ratelimit-*</c> headers. A null limit means that dimension is not limited
/// (and its other two values mean nothing).
/// </summary>
internal sealed record RateState(
    int? RequestLimit,
    int RequestsRemaining,
    TimeSpan RequestsReset,
    int? TokenLimit,
    int TokensRemaining,
    TimeSpan TokensReset);

/// <summary>
/// The outcome of <see cref="IRateLimiter.TryAcquireAsync"/>. When refused, <see cref="Limit"/> names the limit that
/// refused and <see cref="RetryAfter"/> is how long until both limits would admit the same request.
/// <see cref="State"/> is the owner's standing after the decision (null when unlimited).
/// </summary>
internal sealed record RateDecision(bool Allowed, string? Limit, TimeSpan RetryAfter, RateState? State)
{
    public static readonly RateDecision Unlimited = new(true, null, TimeSpan.Zero, null);
}
