using System.Buffers;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// A relayed request's whole answer as its backend gave it: read from the request's event log when written, since
/// a log may live in a store that is read asynchronously, and written from the log's own buffers with its length
/// declared, in one flush.
/// </summary>
internal sealed class RelayedAnswer(LiveRequest request, string contentType, int status) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var events = new List<StreamEvent>();
        await request.Events.ReadAfterAsync(0, events, httpContext.RequestAborted);
        long length = 0;
        foreach (var streamEvent in events)
        {
            if (streamEvent.Event is RequestEvent.Relayed relayed)
            {
                length += relayed.Bytes.Length;
            }
        }

        var response = httpContext.Response;
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength = length;
        var body = response.BodyWriter;
        foreach (var streamEvent in events)
        {
            if (streamEvent.Event is RequestEvent.Relayed relayed)
            {
                body.Write(relayed.Bytes);
            }
        }

        await body.FlushAsync(httpContext.RequestAborted);
    }
}
