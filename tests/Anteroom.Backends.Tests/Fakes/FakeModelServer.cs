using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Anteroom.Backends.Tests.Fakes;

/// <summary>A model server in a handler: records what it is sent and answers as the test scripts it.</summary>
internal sealed class FakeModelServer(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> respond) : HttpMessageHandler
{
    private readonly TaskCompletionSource _requestArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public List<RecordedRequest> Requests { get; } = [];

    /// <summary>Completes when the first request reached the server.</summary>
    public Task RequestArrived => _requestArrived.Task;

    public static FakeModelServer Answering(HttpStatusCode status, Stream body, string mediaType) =>
        new((_, _) => Task.FromResult(Response(status, body, mediaType)));

    public static FakeModelServer Answering(HttpStatusCode status, string body, string mediaType) =>
        Answering(status, new MemoryStream(Encoding.UTF8.GetBytes(body)), mediaType);

    /// <summary>A server that accepts the request and never sends the headers, until the call is cancelled.</summary>
    public static FakeModelServer NeverAnswering() => new(async (_, cancellationToken) =>
    {
        await Signals.UntilCancelled(cancellationToken);
        throw new InvalidOperationException("Unreachable: UntilCancelled only ends by throwing.");
    });

    public static HttpResponseMessage Response(HttpStatusCode status, Stream body, string mediaType)
    {
        var content = new StreamContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(mediaType);
        return new HttpResponseMessage(status) { Content = content };
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        Requests.Add(new RecordedRequest(request.Method, request.RequestUri!, body, request.Content?.Headers.ContentType?.MediaType));
        _requestArrived.TrySetResult();
        return await respond(request, cancellationToken);
    }
}

internal sealed record RecordedRequest(HttpMethod Method, Uri Uri, string? Body, string? MediaType);

internal static class Signals
{
    /// <summary>Waits for cancellation — no clock involved — and throws it.</summary>
    public static async Task UntilCancelled(CancellationToken cancellationToken)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (cancellationToken.Register(() => cancelled.TrySetCanceled(cancellationToken)))
        {
            await cancelled.Task;
        }
    }
}
