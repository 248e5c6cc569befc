using System.Globalization;

namespace Anteroom.Gateway;

/// <summary>Adds <c>Retry-After</c> (whole seconds, rounded up) and <c>retry-after-ms</c> to a refusal, in any API's shape.</summary>
internal sealed class RetryAfterResult(IResult inner, TimeSpan retryAfter) : IResult
{
    /// <summary>The result with the headers when there is something to retry after, as it is otherwise.</summary>
    public static IResult Wrap(IResult result, TimeSpan? retryAfter) =>
        retryAfter is { } retry ? new RetryAfterResult(result, retry) : result;

    public long Milliseconds { get; } = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalMilliseconds));

    public Task ExecuteAsync(HttpContext httpContext)
    {
        long seconds = (Milliseconds + 999) / 1000;
        httpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        httpContext.Response.Headers["retry-after-ms"] = Milliseconds.ToString(CultureInfo.InvariantCulture);
        return inner.ExecuteAsync(httpContext);
    }
}
