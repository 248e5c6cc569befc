using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// A relayed request's whole answer as its backend gave it: read from the request's event log when written, since
/// a log may live in a store that is read asynchronously.
/// </summary>
internal sealed class RelayedAnswer(LiveRequest request, string contentType, int status) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var body = await request.RelayedBytesAsync(httpContext.RequestAborted);
        await Results.Text(body, contentType, status).ExecuteAsync(httpContext);
    }
}
