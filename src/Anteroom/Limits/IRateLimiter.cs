namespace Anteroom.Limits;

/// <summary>
/// Per-owner requests-per-minute and tokens-per-minute limits. A request reserves its tokens up front
/// (<see cref="TryAcquireAsync"/>), and the reservation is corrected once the actual usage is known
/// (<see cref="SettleAsync"/>) or undone when a later admission step refuses it (<see cref="ReleaseAsync"/>).
/// </summary>
/// <remarks>
/// Asynchronous because a limiter shared by several replicas answers over the network; the in-process one
/// (<see cref="InProcessRateLimiter"/>) always answers at once. Every implementation passes the same contract tests.
/// </remarks>
internal interface IRateLimiter
{
    /// <summary>The <see cref="RateDecision.Limit"/> of a refusal by the requests-per-minute limit.</summary>
    const string RequestsPerMinute = "requests_per_minute";

    /// <summary>The <see cref="RateDecision.Limit"/> of a refusal by the tokens-per-minute limit.</summary>
    const string TokensPerMinute = "tokens_per_minute";

    /// <summary>
    /// Admits a request of <paramref name="tokens"/> tokens if both limits allow it, taking one request and the
    /// tokens; otherwise takes nothing from either. A refusal's retry-after is exact: waiting it admits the same request.
    /// </summary>
    ValueTask<RateDecision> TryAcquireAsync(string owner, RateLimit limit, int tokens);

    /// <summary>Corrects a finished request's reservation to what it used: refunds the rest or charges the overrun.</summary>
    ValueTask SettleAsync(string owner, RateLimit limit, int reservedTokens, int actualTokens);

    /// <summary>Undoes a <see cref="TryAcquireAsync"/> whose request a later admission step refused.</summary>
    /// <remarks>
    /// Meant for straight after the acquisition: called later, it would hand back a request the bucket has
    /// meanwhile refilled, letting slightly more than the limit through.
    /// </remarks>
    ValueTask ReleaseAsync(string owner, RateLimit limit, int reservedTokens);

    /// <summary>The owner's standing for the headers; null when <paramref name="limit"/> limits nothing.</summary>
    ValueTask<RateState?> GetStateAsync(string owner, RateLimit limit);

    /// <summary>Forgets owners whose buckets are all full (what a new owner gets, so nothing is lost); returns how many.</summary>
    ValueTask<int> SweepAsync();
}
