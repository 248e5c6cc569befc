using System.Net;
using System.Net.Sockets;
using System.Text;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests;

/// <summary>
/// What every model-server client promises, whatever its protocol. Each protocol's test class derives from this
/// and says how its wire spells a token, an end, an error and a model list.
/// </summary>
public abstract partial class ModelServerClientContractTests : IDisposable
{
    private protected static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);

    // Only keeps a broken build from hanging the run; no passing test comes near it.
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    private readonly List<IDisposable> _disposables = [];

    private protected ManualTimeProvider Time { get; } = new();

    private protected abstract BackendProtocol Protocol { get; }

    private protected abstract string StreamMediaType { get; }

    private protected abstract string ChatPath { get; }

    private protected abstract string ModelsPath { get; }

    private protected abstract string GarbageEvent { get; }

    /// <summary>The wire text of one chunk carrying <paramref name="text"/>.</summary>
    private protected abstract string TokenEvent(string text);

    /// <summary>The wire text that ends a stream normally; a null reason is left out.</summary>
    private protected abstract string EndEvents(string? finishReason, GenerationUsage usage);

    private protected abstract string StreamErrorEvent(string message);

    private protected abstract string ErrorBody(string message);

    private protected abstract string ModelsBody(params string[] names);

    public void Dispose()
    {
        foreach (var disposable in _disposables)
        {
            disposable.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    [Fact]
    public async Task StreamChat_TokensThenEnd_YieldsTokensThenDoneWithUsage()
    {
        var chunks = await StreamAsync(TokenEvent("Hel") + TokenEvent("lo") + EndEvents("stop", new(12, 2)));

        Assert.Equal([GenerationChunk.Token("Hel"), GenerationChunk.Token("lo"), GenerationChunk.Done("stop", new(12, 2))], chunks);
    }

    [Fact]
    public async Task StreamChat_OutputCutByTokenLimit_ReportsFinishReasonLength()
    {
        var chunks = await StreamAsync(TokenEvent("Once upon") + EndEvents("length", new(5, 64)));

        Assert.Equal(GenerationChunk.Done("length", new(5, 64)), chunks[^1]);
    }

    [Fact]
    public async Task StreamChat_EndWithoutFinishReason_ReportsStop()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + EndEvents(null, new(1, 1)));

        Assert.Equal(GenerationChunk.Done("stop", new(1, 1)), chunks[^1]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task StreamChat_BodyArrivingInTinyPieces_YieldsTheSameChunks(int seed)
    {
        var wire = TokenEvent("Grüße, ") + TokenEvent("世界 ") + TokenEvent("🌍\nbye") + EndEvents("stop", new(7, 3));
        var body = new TricklingBody(wire, seed);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(
            [
                GenerationChunk.Token("Grüße, "),
                GenerationChunk.Token("世界 "),
                GenerationChunk.Token("🌍\nbye"),
                GenerationChunk.Done("stop", new(7, 3)),
            ],
            chunks);
        Assert.True(body.Reads > Encoding.UTF8.GetByteCount(wire) / 7, "the body should have been read in many small pieces");
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.InternalServerError)]
    public async Task StreamChat_ErrorStatus_ReportsStatusAndBackendMessage(HttpStatusCode status)
    {
        var client = CreateClient(FakeModelServer.Answering(status, ErrorBody("model 'llama9' not found"), "application/json"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        var chunk = Assert.Single(chunks);
        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "model 'llama9' not found", (int)status), chunk.Error);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    [InlineData(HttpStatusCode.TooManyRequests)]
    public async Task StreamChat_BusyStatus_ReportsBusy(HttpStatusCode status)
    {
        const string message = "server busy, please try again.  maximum pending requests exceeded";
        var client = CreateClient(FakeModelServer.Answering(status, ErrorBody(message), "application/json"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(new BackendError(BackendFailure.Busy, message, (int)status), Assert.Single(chunks).Error);
    }

    [Fact]
    public async Task StreamChat_ErrorStatusWithPlainTextBody_ReportsTheText()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.BadGateway, "upstream connect error\n", "text/plain"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "upstream connect error", 502), Assert.Single(chunks).Error);
    }

    [Fact]
    public async Task StreamChat_ErrorStatusWithEmptyBody_ReportsTheReasonPhrase()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.InternalServerError, "", "text/plain"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "Internal Server Error", 500), Assert.Single(chunks).Error);
    }

    [Fact]
    public async Task StreamChat_ErrorInsideStream_ReportsStreamErrorAfterTheTokens()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + StreamErrorEvent("CUDA error: out of memory"));

        Assert.Equal(
            [GenerationChunk.Token("Hi"), GenerationChunk.Failed(new BackendError(BackendFailure.StreamError, "CUDA error: out of memory"))],
            chunks);
    }

    [Fact]
    public async Task StreamChat_StreamEndingWithoutEndMarker_ReportsDisconnected()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + TokenEvent(" there"));

        Assert.Equal(3, chunks.Count);
        AssertFailed(BackendFailure.Disconnected, chunks[^1]);
    }

    [Fact]
    public async Task StreamChat_ConnectionDroppingMidStream_ReportsDisconnected()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        body.Fail(new IOException("Connection reset by peer"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(GenerationChunk.Token("Hi"), chunks[0]);
        Assert.Equal(new BackendError(BackendFailure.Disconnected, "Connection reset by peer"), chunks[1].Error);
        Assert.Equal(2, chunks.Count);
    }

    [Fact]
    public async Task StreamChat_UnparsableData_ReportsProtocolViolationAndStops()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + GarbageEvent + TokenEvent("ignored") + EndEvents("stop", new(1, 2)));

        Assert.Equal(2, chunks.Count);
        Assert.Equal(GenerationChunk.Token("Hi"), chunks[0]);
        AssertFailed(BackendFailure.ProtocolViolation, chunks[1]);
    }

    [Fact]
    public async Task StreamChat_NoDataWithinIdleTimeout_ReportsStalledAndAbortsTheCall()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var chunks = client.StreamChatAsync(Request()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        Time.Advance(IdleTimeout - TimeSpan.FromSeconds(1));
        Assert.False(next.IsCompleted);
        Time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await next);
        AssertFailed(BackendFailure.Stalled, chunks.Current);
        Assert.True(body.IsDisposed);
        Assert.False(await chunks.MoveNextAsync());
    }

    [Fact]
    public async Task StreamChat_NoResponseHeadersWithinIdleTimeout_ReportsStalled()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);

        var collecting = CollectAsync(client.StreamChatAsync(Request()));
        await server.RequestArrived;
        Time.Advance(IdleTimeout);

        AssertFailed(BackendFailure.Stalled, Assert.Single(await collecting));
    }

    [Fact]
    public async Task StreamChat_ConsumerTakingLongerThanIdleTimeout_IsNotAStall()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var chunks = client.StreamChatAsync(Request()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        Time.Advance(IdleTimeout * 3);
        body.Send(EndEvents("stop", new(1, 1)));
        body.End();

        Assert.True(await chunks.MoveNextAsync());
        Assert.Equal(GenerationChunk.Done("stop", new(1, 1)), chunks.Current);
    }

    [Fact]
    public async Task StreamChat_CallerCancellingWhileWaitingForData_ThrowsAndAbortsUpstream()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        using var caller = new CancellationTokenSource();
        await using var chunks = client.StreamChatAsync(Request(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.AsTask());
        Assert.True(body.IsDisposed);
    }

    [Fact]
    public async Task StreamChat_CallerCancellingBetweenChunks_AbortsUpstreamAtOnce()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        using var caller = new CancellationTokenSource();
        await using var chunks = client.StreamChatAsync(Request(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        await caller.CancelAsync();

        Assert.True(body.IsDisposed, "the upstream call should end when the caller cancels, not at the next read");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => chunks.MoveNextAsync().AsTask());
    }

    [Fact]
    public async Task StreamChat_CallerCancellingBeforeHeaders_Throws()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);
        using var caller = new CancellationTokenSource();

        var collecting = CollectAsync(client.StreamChatAsync(Request(), caller.Token));
        await server.RequestArrived;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => collecting);
    }

    [Fact]
    public async Task StreamChat_CallerCancelledBeforeStarting_Throws()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, TokenEvent("Hi"), StreamMediaType));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => CollectAsync(client.StreamChatAsync(Request(), new CancellationToken(canceled: true))));
    }

    [Fact]
    public async Task StreamChat_ConsumerStoppingEarly_DisposesTheResponse()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        await foreach (var _ in client.StreamChatAsync(Request()))
        {
            break;
        }

        Assert.True(body.IsDisposed);
    }

    [Fact]
    public async Task StreamChat_LastChunk_ArrivesWithTheResponseAlreadyReleased()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi") + EndEvents("stop", new(1, 1)));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        await foreach (var chunk in client.StreamChatAsync(Request()))
        {
            Assert.Equal(chunk.Kind != GenerationChunkKind.Token, body.IsDisposed);
        }
    }

    [Fact]
    public async Task StreamChat_CallerCancellingBetweenChunks_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));
        using var caller = new CancellationTokenSource();
        await using var chunks = CreateLoopbackClient(server).StreamChatAsync(Request(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        await caller.CancelAsync();

        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task StreamChat_CallerCancellingWhileWaiting_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));
        using var caller = new CancellationTokenSource();
        await using var chunks = CreateLoopbackClient(server).StreamChatAsync(Request(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        var next = chunks.MoveNextAsync();

        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.AsTask());
        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task StreamChat_Stalling_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));
        await using var chunks = CreateLoopbackClient(server).StreamChatAsync(Request()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        var next = chunks.MoveNextAsync();

        Time.Advance(IdleTimeout);

        Assert.True(await next);
        AssertFailed(BackendFailure.Stalled, chunks.Current);
        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task StreamChat_ConsumerStoppingEarly_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));

        await foreach (var _ in CreateLoopbackClient(server).StreamChatAsync(Request()))
        {
            break;
        }

        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task StreamChat_ConnectionRefused_ReportsUnreachable()
    {
        var client = CreateClient(new SocketsHttpHandler(), $"http://127.0.0.1:{ClosedLoopbackPort()}/");

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        AssertFailed(BackendFailure.Unreachable, Assert.Single(chunks));
    }

    [Fact]
    public async Task StreamChat_ConnectTimeout_ReportsUnreachable()
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromMilliseconds(50),
            // A connection that never completes, as to an address that drops packets.
            ConnectCallback = async (_, cancellationToken) =>
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
                throw new InvalidOperationException("Unreachable.");
            },
        };
        var http = Track(new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan });
        var client = ModelServerClient.Create(Protocol, http, new Uri("http://gpu-1.test:8000/"), Options());

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        AssertFailed(BackendFailure.Unreachable, Assert.Single(chunks));
    }

    [Fact]
    public async Task StreamChat_HttpClientTimeoutBeforeHeaders_ReportsStalled()
    {
        var http = Track(new HttpClient(FakeModelServer.NeverAnswering()) { Timeout = TimeSpan.FromMilliseconds(50) });
        var client = ModelServerClient.Create(Protocol, http, new Uri("http://gpu-1.test:8000/"), Options());

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        AssertFailed(BackendFailure.Stalled, Assert.Single(chunks));
    }

    [Theory]
    [InlineData("http://gpu-1.test:8000", "http://gpu-1.test:8000")]
    [InlineData("http://gpu-1.test:8000/", "http://gpu-1.test:8000")]
    [InlineData("http://proxy.test/gpu-1", "http://proxy.test/gpu-1")]
    [InlineData("http://proxy.test/gpu-1/", "http://proxy.test/gpu-1")]
    public async Task StreamChat_AnyBaseAddress_PostsJsonToTheChatRoute(string baseAddress, string expectedRoot)
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server, baseAddress);

        await CollectAsync(client.StreamChatAsync(Request()));

        var request = Assert.Single(server.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal(new Uri(expectedRoot + ChatPath), request.Uri);
        Assert.Equal("application/json", request.MediaType);
    }

    [Fact]
    public void Protocol_IsTheOneAskedFor()
    {
        Assert.Equal(Protocol, CreateClient(FakeModelServer.NeverAnswering()).Protocol);
    }

    [Fact]
    public async Task ListModels_ModelList_ReturnsTheNames()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, ModelsBody("llama3.1:8b", "qwen2.5:7b"), "application/json");
        var client = CreateClient(server, "http://gpu-1.test:8000");

        var result = await client.ListModelsAsync();

        Assert.True(result.IsSuccess);
        Assert.Equal(["llama3.1:8b", "qwen2.5:7b"], result.Models);
        var request = Assert.Single(server.Requests);
        Assert.Equal(HttpMethod.Get, request.Method);
        Assert.Equal(new Uri("http://gpu-1.test:8000" + ModelsPath), request.Uri);
    }

    [Fact]
    public async Task ListModels_NoModels_ReturnsAnEmptyList()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, ModelsBody(), "application/json"));

        var result = await client.ListModelsAsync();

        Assert.True(result.IsSuccess);
        Assert.Empty(result.Models);
    }

    [Fact]
    public async Task ListModels_BusyStatus_ReportsBusy()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.ServiceUnavailable, ErrorBody("loading"), "application/json"));

        var result = await client.ListModelsAsync();

        Assert.False(result.IsSuccess);
        Assert.Empty(result.Models);
        Assert.Equal(new BackendError(BackendFailure.Busy, "loading", 503), result.Error);
    }

    [Fact]
    public async Task ListModels_ErrorStatus_ReportsStatusAndMessage()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.Unauthorized, ErrorBody("bad key"), "application/json"));

        var result = await client.ListModelsAsync();

        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "bad key", 401), result.Error);
    }

    [Theory]
    [InlineData("<!doctype html><html>Open WebUI</html>")]
    [InlineData("{\"unrelated\":true}")]
    public async Task ListModels_NotAModelList_ReportsProtocolViolation(string body)
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "text/html"));

        var result = await client.ListModelsAsync();

        Assert.Equal(BackendFailure.ProtocolViolation, result.Error?.Failure);
    }

    [Fact]
    public async Task ListModels_ConnectionRefused_ReportsUnreachable()
    {
        var client = CreateClient(new SocketsHttpHandler(), $"http://127.0.0.1:{ClosedLoopbackPort()}/");

        var result = await client.ListModelsAsync();

        Assert.Equal(BackendFailure.Unreachable, result.Error?.Failure);
    }

    [Fact]
    public async Task ListModels_NoResponseWithinIdleTimeout_ReportsStalled()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);

        var listing = client.ListModelsAsync();
        await server.RequestArrived;
        Time.Advance(IdleTimeout);

        Assert.Equal(BackendFailure.Stalled, (await listing).Error?.Failure);
    }

    [Fact]
    public async Task ListModels_CallerCancelling_Throws()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);
        using var caller = new CancellationTokenSource();

        var listing = client.ListModelsAsync(caller.Token);
        await server.RequestArrived;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => listing);
    }

    private protected IModelServerClient CreateClient(HttpMessageHandler handler, string baseAddress = "http://gpu-1.test:8000/") =>
        ModelServerClient.Create(Protocol, Track(new HttpClient(handler)), new Uri(baseAddress), Options());

    private protected async Task<List<GenerationChunk>> StreamAsync(string body, GenerationRequest? request = null)
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        return await CollectAsync(client.StreamChatAsync(request ?? Request()));
    }

    private protected static GenerationRequest Request(int? maxOutputTokens = null, double? temperature = null) => new()
    {
        Model = "llama3.1:8b",
        Messages = [new ChatMessage("system", "Be brief."), new ChatMessage("user", "Say hi")],
        MaxOutputTokens = maxOutputTokens,
        Temperature = temperature,
    };

    private protected static async Task<List<GenerationChunk>> CollectAsync(IAsyncEnumerable<GenerationChunk> stream)
    {
        var chunks = new List<GenerationChunk>();
        await foreach (var chunk in stream)
        {
            chunks.Add(chunk);
        }

        return chunks;
    }

    private protected static void AssertFailed(BackendFailure expected, GenerationChunk chunk)
    {
        Assert.Equal(GenerationChunkKind.Error, chunk.Kind);
        Assert.Equal(expected, chunk.Error?.Failure);
        Assert.False(string.IsNullOrWhiteSpace(chunk.Error?.Message));
    }

    // The handler would close a dropped response itself after its drain timeout; made endless here, so only the
    // client's own abort can close the connection in these tests.
    private IModelServerClient CreateLoopbackClient(LoopbackModelServer server) =>
        CreateClient(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.FromHours(1) }, server.BaseAddress.ToString());

    private ModelServerClientOptions Options() => new() { IdleTimeout = IdleTimeout, TimeProvider = Time };

    private T Track<T>(T disposable)
        where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }

    // A port nothing listens on: bound a moment ago, released, so the OS answers a connect with a refusal.
    private static int ClosedLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
