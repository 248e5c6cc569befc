using System.Net;
using System.Text;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests;

/// <summary>What every client promises when it relays a client's request byte for byte.</summary>
public abstract partial class ModelServerClientContractTests
{
    /// <summary>What ends one frame of a stream on this protocol's wire, as the test wire writes it.</summary>
    private protected abstract string FrameTerminator { get; }

    /// <summary>A whole non-streaming chat answer.</summary>
    private protected abstract string ChatBody(string text, string finishReason, GenerationUsage usage);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public async Task Relay_BodyArrivingInTinyPieces_RelaysEveryByteInWholeFrames(int seed)
    {
        var wire = TokenEvent("Grüße, ") + TokenEvent("世界 ") + TokenEvent("🌍\nbye") + EndEvents("stop", new(7, 3));
        var body = new TricklingBody(wire, seed);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(RelayChunk.Head(200, StreamMediaType), chunks[0]);
        Assert.Equal(wire, RelayedText(chunks));
        AssertWholeFrames(chunks, Frames(wire));
        Assert.Equal(3, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(7, 3), "stop"), chunks[^1]);
        Assert.True(chunks.Count(chunk => chunk.Kind == RelayChunkKind.Data) > 3, "frames arriving apart should go out apart");
    }

    [Fact]
    public async Task Relay_FramesArrivingTogether_GoOutAsOneDataChunk()
    {
        var wire = TokenEvent("Hel") + TokenEvent("lo") + EndEvents("stop", new(12, 2));

        var chunks = await RelayAsync(wire);

        Assert.Equal(
            [RelayChunk.Head(200, StreamMediaType), RelayChunk.Data(Encoding.UTF8.GetBytes(wire), 2), RelayChunk.Done(new(12, 2), "stop")],
            chunks,
            RelayChunkComparer.Instance);
    }

    [Fact]
    public async Task Relay_FrameArrivingInPieces_IsHandedOutOnceWhole()
    {
        var frame = TokenEvent("Hi");
        var body = new ScriptedBody();
        body.Send(frame[..(frame.Length / 2)]);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var chunks = client.RelayAsync(RelayChat()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        Assert.False(next.IsCompleted);
        body.Send(frame[(frame.Length / 2)..]);

        Assert.True(await next);
        Assert.Equal(frame, Encoding.UTF8.GetString(chunks.Current.Bytes.Span));
        Assert.Equal(1, chunks.Current.ContentPieces);
    }

    [Fact]
    public async Task Relay_FramesWithoutText_AreRelayedButNotCounted()
    {
        var wire = TokenEvent("") + TokenEvent("Hi") + TokenEvent("") + EndEvents("stop", new(2, 1));

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(1, chunks.Sum(chunk => chunk.ContentPieces));
    }

    [Fact]
    public async Task Relay_ErrorInsideStream_IsRelayedThenReportedAsAlreadyRelayed()
    {
        var wire = TokenEvent("Hi") + StreamErrorEvent("CUDA error: out of memory");

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(
            RelayChunk.Failed(new BackendError(BackendFailure.StreamError, "CUDA error: out of memory"), errorWasRelayed: true),
            chunks[^1]);
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.InternalServerError)]
    public async Task Relay_ErrorStatus_RelaysStatusAndBodyThenFails(HttpStatusCode status)
    {
        var body = ErrorBody("model 'llama9' not found");
        var client = CreateClient(FakeModelServer.Answering(status, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(
            [
                RelayChunk.Head((int)status, "application/json"),
                RelayChunk.Data(Encoding.UTF8.GetBytes(body)),
                RelayChunk.Failed(new BackendError(BackendFailure.ErrorStatus, "model 'llama9' not found", (int)status), errorWasRelayed: true),
            ],
            chunks,
            RelayChunkComparer.Instance);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    [InlineData(HttpStatusCode.TooManyRequests)]
    public async Task Relay_BusyStatus_RelaysItThenFailsBusy(HttpStatusCode status)
    {
        const string message = "server busy, please try again.  maximum pending requests exceeded";
        var body = ErrorBody(message);
        var client = CreateClient(FakeModelServer.Answering(status, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(3, chunks.Count);
        Assert.Equal(body, RelayedText(chunks));
        Assert.Equal(RelayChunk.Failed(new BackendError(BackendFailure.Busy, message, (int)status), errorWasRelayed: true), chunks[^1]);
    }

    [Fact]
    public async Task Relay_ErrorStatusWithEmptyBody_RelaysAnEmptyBodyAndTheReasonPhrase()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.InternalServerError, "", "text/plain"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(
            [
                RelayChunk.Head(500, "text/plain"),
                RelayChunk.Data(Array.Empty<byte>()),
                RelayChunk.Failed(new BackendError(BackendFailure.ErrorStatus, "Internal Server Error", 500), errorWasRelayed: true),
            ],
            chunks,
            RelayChunkComparer.Instance);
    }

    [Fact]
    public async Task Relay_ConnectionRefused_FailsWithoutAHead()
    {
        var client = CreateClient(new SocketsHttpHandler(), $"http://127.0.0.1:{ClosedLoopbackPort()}/");

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        AssertRelayFailed(BackendFailure.Unreachable, Assert.Single(chunks));
    }

    [Fact]
    public async Task Relay_NoResponseHeadersWithinIdleTimeout_FailsStalledWithoutAHead()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);

        var collecting = CollectAsync(client.RelayAsync(RelayChat()));
        await server.RequestArrived;
        Time.Advance(IdleTimeout);

        AssertRelayFailed(BackendFailure.Stalled, Assert.Single(await collecting));
    }

    [Fact]
    public async Task Relay_NoDataWithinIdleTimeout_FailsStalledAndAbortsTheCall()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var chunks = client.RelayAsync(RelayChat()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.True(await chunks.MoveNextAsync());
        Assert.Equal(RelayChunkKind.Data, chunks.Current.Kind);

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        Time.Advance(IdleTimeout - TimeSpan.FromSeconds(1));
        Assert.False(next.IsCompleted);
        Time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await next);
        AssertRelayFailed(BackendFailure.Stalled, chunks.Current);
        Assert.True(body.IsDisposed);
        Assert.False(await chunks.MoveNextAsync());
    }

    [Fact]
    public async Task Relay_ConsumerTakingLongerThanIdleTimeout_IsNotAStall()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var enumerator = client.RelayAsync(RelayChat()).GetAsyncEnumerator();
        Assert.True(await enumerator.MoveNextAsync());
        Assert.True(await enumerator.MoveNextAsync());

        Time.Advance(IdleTimeout * 3);
        body.Send(EndEvents("stop", new(1, 1)));
        body.End();

        Assert.True(await enumerator.MoveNextAsync());
        Assert.Equal(RelayChunkKind.Data, enumerator.Current.Kind);
        Assert.True(await enumerator.MoveNextAsync());
        Assert.Equal(RelayChunk.Done(new(1, 1), "stop"), enumerator.Current);
    }

    [Fact]
    public async Task Relay_StreamEndingWithoutEndMarker_RelaysTheFramesThenFailsDisconnected()
    {
        var wire = TokenEvent("Hi") + TokenEvent(" there");

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        AssertRelayFailed(BackendFailure.Disconnected, chunks[^1]);
    }

    [Fact]
    public async Task Relay_StreamCutInTheMiddleOfAFrame_RelaysOnlyTheWholeFrames()
    {
        var cut = TokenEvent(" there");

        var chunks = await RelayAsync(TokenEvent("Hi") + cut[..(cut.Length / 2)]);

        Assert.Equal(TokenEvent("Hi"), RelayedText(chunks));
        AssertRelayFailed(BackendFailure.Disconnected, chunks[^1]);
    }

    [Fact]
    public async Task Relay_ConnectionDroppingMidStream_FailsDisconnected()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        body.Fail(new IOException("Connection reset by peer"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(TokenEvent("Hi"), RelayedText(chunks));
        Assert.Equal(RelayChunk.Failed(new BackendError(BackendFailure.Disconnected, "Connection reset by peer")), chunks[^1]);
    }

    [Fact]
    public async Task Relay_UnparsableFrame_IsNotRelayedAndFailsProtocolViolation()
    {
        var chunks = await RelayAsync(TokenEvent("Hi") + GarbageEvent + TokenEvent("ignored") + EndEvents("stop", new(1, 2)));

        Assert.Equal(TokenEvent("Hi"), RelayedText(chunks));
        AssertRelayFailed(BackendFailure.ProtocolViolation, chunks[^1]);
    }

    [Fact]
    public async Task Relay_CallerCancellingWhileWaitingForData_ThrowsAndAbortsUpstream()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        using var caller = new CancellationTokenSource();
        await using var chunks = client.RelayAsync(RelayChat(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.True(await chunks.MoveNextAsync());

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.AsTask());
        Assert.True(body.IsDisposed);
    }

    [Fact]
    public async Task Relay_CallerCancellingBetweenChunks_AbortsUpstreamAtOnce()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi"));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        using var caller = new CancellationTokenSource();
        await using var chunks = client.RelayAsync(RelayChat(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.True(await chunks.MoveNextAsync());

        await caller.CancelAsync();

        Assert.True(body.IsDisposed, "the upstream call should end when the caller cancels, not at the next read");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => chunks.MoveNextAsync().AsTask());
    }

    [Fact]
    public async Task Relay_CallerCancellingAfterTheHead_AbortsUpstreamAtOnce()
    {
        var body = new ScriptedBody();
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        using var caller = new CancellationTokenSource();
        await using var chunks = client.RelayAsync(RelayChat(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.Equal(RelayChunkKind.Head, chunks.Current.Kind);

        await caller.CancelAsync();

        Assert.True(body.IsDisposed);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => chunks.MoveNextAsync().AsTask());
    }

    [Fact]
    public async Task Relay_CallerCancelledBeforeStarting_Throws()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, TokenEvent("Hi"), StreamMediaType));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => CollectAsync(client.RelayAsync(RelayChat(), new CancellationToken(canceled: true))));
    }

    [Fact]
    public async Task Relay_CallerCancellingBetweenChunks_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));
        using var caller = new CancellationTokenSource();
        await using var chunks = CreateLoopbackClient(server).RelayAsync(RelayChat(), caller.Token).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.True(await chunks.MoveNextAsync());
        Assert.Equal(TokenEvent("Hi"), Encoding.UTF8.GetString(chunks.Current.Bytes.Span));

        await caller.CancelAsync();

        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task Relay_ConsumerStoppingEarly_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));

        await foreach (var _ in CreateLoopbackClient(server).RelayAsync(RelayChat()))
        {
            break;
        }

        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task Relay_Stalling_ClosesTheRealConnection()
    {
        await using var server = new LoopbackModelServer(StreamMediaType, TokenEvent("Hi"));
        await using var chunks = CreateLoopbackClient(server).RelayAsync(RelayChat()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());
        Assert.True(await chunks.MoveNextAsync());
        var next = chunks.MoveNextAsync();

        Time.Advance(IdleTimeout);

        Assert.True(await next);
        AssertRelayFailed(BackendFailure.Stalled, chunks.Current);
        await server.ClientHungUp.WaitAsync(HangGuard);
    }

    [Fact]
    public async Task Relay_StreamReadToItsEnd_LeavesTheConnectionForTheNextRequest()
    {
        await using var server = new KeepAliveModelServer(StreamMediaType, TokenEvent("Hi") + EndEvents("stop", new(1, 1)));
        var client = CreateClient(new SocketsHttpHandler(), server.BaseAddress.ToString());

        var first = await CollectAsync(client.RelayAsync(RelayChat()));
        var second = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(RelayChunk.Done(new(1, 1), "stop"), first[^1]);
        Assert.Equal(RelayChunk.Done(new(1, 1), "stop"), second[^1]);
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Relay_LastChunk_ArrivesWithTheResponseAlreadyReleased()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi") + EndEvents("stop", new(1, 1)));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));

        await foreach (var chunk in client.RelayAsync(RelayChat()))
        {
            Assert.Equal(chunk.Kind is RelayChunkKind.Done or RelayChunkKind.Failed, body.IsDisposed);
        }
    }

    [Fact]
    public async Task Relay_SingleBody_IsRelayedWholeThenDoneWithItsUsage()
    {
        var body = ChatBody("Hello there", "stop", new(12, 5));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat(streaming: false)));

        Assert.Equal(
            [RelayChunk.Head(200, "application/json"), RelayChunk.Data(Encoding.UTF8.GetBytes(body), 5), RelayChunk.Done(new(12, 5), "stop")],
            chunks,
            RelayChunkComparer.Instance);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Relay_SingleBodyArrivingInTinyPieces_IsStillOneDataChunk(int seed)
    {
        var body = ChatBody("Grüße, 世界 🌍", "length", new(7, 64));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, new TricklingBody(body, seed), "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat(streaming: false)));

        Assert.Equal(body, Encoding.UTF8.GetString(Assert.Single(chunks, chunk => chunk.Kind == RelayChunkKind.Data).Bytes.Span));
        Assert.Equal(RelayChunk.Done(new(7, 64), "length"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_SingleBodyAnsweringAStreamingRequest_IsRelayedAsOneBody()
    {
        var body = ChatBody("Hello", "stop", new(3, 1));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json; charset=utf-8"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat(streaming: true)));

        Assert.Equal(
            [RelayChunk.Head(200, "application/json; charset=utf-8"), RelayChunk.Data(Encoding.UTF8.GetBytes(body), 1), RelayChunk.Done(new(3, 1), "stop")],
            chunks,
            RelayChunkComparer.Instance);
    }

    [Fact]
    public async Task Relay_StreamAnsweringANonStreamingRequest_IsRelayedInFrames()
    {
        var wire = TokenEvent("Hi") + EndEvents("stop", new(2, 1));

        var chunks = await CollectAsync(CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, wire, StreamMediaType))
            .RelayAsync(RelayChat(streaming: false)));

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(RelayChunk.Done(new(2, 1), "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_SingleBodyThatIsNotJson_IsNotRelayedAndFailsProtocolViolation()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, "<!doctype html><html>Open WebUI</html>", "text/html"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat(streaming: false)));

        Assert.Equal(2, chunks.Count);
        Assert.Equal(RelayChunk.Head(200, "text/html"), chunks[0]);
        AssertRelayFailed(BackendFailure.ProtocolViolation, chunks[1]);
    }

    [Theory]
    [InlineData("http://gpu-1.test:8000", "http://gpu-1.test:8000")]
    [InlineData("http://proxy.test/gpu-1/", "http://proxy.test/gpu-1")]
    public async Task Relay_AnyBaseAddress_PostsTheBodyUnchangedToThePath(string baseAddress, string expectedRoot)
    {
        const string body = "{\"model\":\"llama3.1:8b\",  \"messages\":[],\"x_custom\":{\"kept\":true}}";
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server, baseAddress);

        await CollectAsync(client.RelayAsync(new RelayRequest(ChatPath.TrimStart('/'), Encoding.UTF8.GetBytes(body), Streaming: true)));

        var request = Assert.Single(server.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal(new Uri(expectedRoot + ChatPath), request.Uri);
        Assert.Equal("application/json", request.MediaType);
        Assert.Equal(body, request.Body);
    }

    [Theory]
    [InlineData("/api/chat")]
    [InlineData("http://elsewhere.test/api/chat")]
    [InlineData("//elsewhere.test/api/chat")]
    [InlineData("../admin")]
    public async Task Relay_PathLeavingTheBaseAddress_Throws(string path)
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server, "http://proxy.test/gpu-1/");

        await Assert.ThrowsAsync<ArgumentException>(() => CollectAsync(client.RelayAsync(new RelayRequest(path, "{}"u8.ToArray(), Streaming: true))));
        Assert.Empty(server.Requests);
    }

    private protected RelayRequest RelayChat(bool streaming = true) =>
        new(ChatPath.TrimStart('/'), "{\"model\":\"llama3.1:8b\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hi\"}]}"u8.ToArray(), streaming);

    private protected async Task<List<RelayChunk>> RelayAsync(string body, RelayRequest? request = null)
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        return await CollectAsync(client.RelayAsync(request ?? RelayChat()));
    }

    /// <summary>Collects a relay, copying each data chunk's bytes: they are only valid until the next step.</summary>
    private protected static async Task<List<RelayChunk>> CollectAsync(IAsyncEnumerable<RelayChunk> relay)
    {
        var chunks = new List<RelayChunk>();
        await foreach (var chunk in relay)
        {
            chunks.Add(chunk.Kind == RelayChunkKind.Data ? RelayChunk.Data(chunk.Bytes.ToArray(), chunk.ContentPieces) : chunk);
        }

        return chunks;
    }

    private protected static string RelayedText(IEnumerable<RelayChunk> chunks) =>
        Encoding.UTF8.GetString(chunks.Where(chunk => chunk.Kind == RelayChunkKind.Data).SelectMany(chunk => chunk.Bytes.ToArray()).ToArray());

    /// <summary>Asserts that every data chunk ends where one of <paramref name="frames"/> ends.</summary>
    private protected static void AssertWholeFrames(IEnumerable<RelayChunk> chunks, IEnumerable<string> frames)
    {
        var boundaries = new HashSet<int>();
        var offset = 0;
        foreach (var frame in frames)
        {
            offset += Encoding.UTF8.GetByteCount(frame);
            boundaries.Add(offset);
        }

        var relayed = 0;
        foreach (var chunk in chunks.Where(chunk => chunk.Kind == RelayChunkKind.Data))
        {
            relayed += chunk.Bytes.Length;
            Assert.True(boundaries.Contains(relayed), $"a data chunk ended at byte {relayed}, inside a frame");
        }
    }

    private protected static void AssertRelayFailed(BackendFailure expected, RelayChunk chunk)
    {
        Assert.Equal(RelayChunkKind.Failed, chunk.Kind);
        Assert.Equal(expected, chunk.Error?.Failure);
        Assert.False(chunk.ErrorWasRelayed);
        Assert.False(string.IsNullOrWhiteSpace(chunk.Error?.Message));
    }

    // The test wire writes each frame with exactly one terminator, which no JSON payload contains.
    private List<string> Frames(string wire) =>
        wire.Split(FrameTerminator).SkipLast(1).Select(frame => frame + FrameTerminator).ToList();

    /// <summary>Compares data chunks by their bytes rather than by the buffer they sit in.</summary>
    private protected sealed class RelayChunkComparer : IEqualityComparer<RelayChunk>
    {
        public static RelayChunkComparer Instance { get; } = new();

        public bool Equals(RelayChunk x, RelayChunk y) =>
            x.Kind == y.Kind
            && x.StatusCode == y.StatusCode
            && x.ContentType == y.ContentType
            && x.Bytes.Span.SequenceEqual(y.Bytes.Span)
            && x.ContentPieces == y.ContentPieces
            && x.Usage == y.Usage
            && x.FinishReason == y.FinishReason
            && x.Error == y.Error
            && x.ErrorWasRelayed == y.ErrorWasRelayed;

        public int GetHashCode(RelayChunk obj) => obj.Kind.GetHashCode();
    }
}
