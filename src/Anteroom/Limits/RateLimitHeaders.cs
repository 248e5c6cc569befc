using System.Globalization;

namespace Anteroom.Limits;

/// <summary>
/// The OpenAI-style <c>x-ratelimit-*</c> headers, so clients written against OpenAI pace themselves against us
/// unchanged. Only limited dimensions are reported: an absent header means no limit, not zero.
/// </summary>
internal static class RateLimitHeaders
{
    public static void Write(IHeaderDictionary headers, RateState state)
    {
        if (state.RequestLimit is { } requestLimit)
        {
            Write(headers, "requests", requestLimit, state.RequestsRemaining, state.RequestsReset);
        }

        if (state.TokenLimit is { } tokenLimit)
        {
            Write(headers, "tokens", tokenLimit, state.TokensRemaining, state.TokensReset);
        }
    }

    /// <summary>
    /// A duration the way OpenAI writes resets (Go's style), rounded up to the millisecond so a reset is never
    /// reported early: <c>0s</c>, <c>250ms</c>, <c>6.5s</c>, <c>1m30.5s</c>, <c>1h2m3s</c>.
    /// </summary>
    public static string Duration(TimeSpan duration)
    {
        long ms = duration <= TimeSpan.Zero
            ? 0
            : (duration.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond;
        if (ms == 0)
        {
            return "0s";
        }

        if (ms < 1000)
        {
            return ms.ToString(CultureInfo.InvariantCulture) + "ms";
        }

        long hours = ms / 3_600_000;
        long minutes = ms / 60_000 % 60;
        string seconds = (ms % 60_000 / 1000m).ToString("0.###", CultureInfo.InvariantCulture) + "s";
        return hours > 0 ? string.Create(CultureInfo.InvariantCulture, $"{hours}h{minutes}m{seconds}")
            : minutes > 0 ? string.Create(CultureInfo.InvariantCulture, $"{minutes}m{seconds}")
            : seconds;
    }

    private static void Write(IHeaderDictionary headers, string dimension, int limit, int remaining, TimeSpan reset)
    {
        headers["x-ratelimit-limit-" + dimension] = limit.ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-remaining-" + dimension] = remaining.ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-reset-" + dimension] = Duration(reset);
    }
}
