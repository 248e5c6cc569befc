using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator;

/// <summary>A request body as the simulated server received it: the path it was sent to and its exact bytes.</summary>
public sealed record ReceivedBody(string Path, byte[] Body);

/// <summary>Keeps the latest request bodies, byte for byte, before any route reads them.</summary>
internal sealed class BodyRecorder(int capacity)
{
    private readonly Queue<ReceivedBody> _bodies = new();
    private readonly Lock _lock = new();

    public bool IsOn => capacity > 0;

    public async Task RecordAsync(HttpContext http, RequestDelegate next)
    {
        if (HttpMethods.IsPost(http.Request.Method))
        {
            // Read whole and put back, so the route parses the very bytes recorded here.
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
            byte[] body = buffer.ToArray();
            lock (_lock)
            {
                if (_bodies.Count == capacity)
                    _bodies.Dequeue();
                _bodies.Enqueue(new ReceivedBody(http.Request.Path.Value ?? "", body));
            }

            http.Request.Body = new MemoryStream(body, writable: false);
        }

        await next(http);
    }

    public IReadOnlyList<ReceivedBody> Snapshot()
    {
        lock (_lock)
            return [.. _bodies];
    }
}
