using System.Net;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests;

/// <summary>What every client promises when it asks for embeddings.</summary>
public abstract partial class ModelServerClientContractTests
{
    private protected abstract string EmbedPath { get; }

    /// <summary>An embedding answer holding <paramref name="vectors"/> in order.</summary>
    private protected abstract string EmbeddingsBody(int promptTokens, params float[][] vectors);

    [Fact]
    public async Task Embed_Vectors_ReturnsOnePerInputInOrderWithThePromptTokens()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EmbeddingsBody(9, [0.25f, -1.5f], [3e-5f, 0f]), "application/json");
        var client = CreateClient(server);

        var result = await client.EmbedAsync("nomic-embed-text", ["first", "second"]);

        Assert.True(result.IsSuccess);
        Assert.Equal(new[] { new[] { 0.25f, -1.5f }, new[] { 3e-5f, 0f } }, result.Vectors);
        Assert.Equal(9, result.PromptTokens);
    }

    [Fact]
    public async Task Embed_AnyInputs_PostsTheModelAndTheInputsAsAnArray()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EmbeddingsBody(1, [1f]), "application/json");
        var client = CreateClient(server, "http://proxy.test/gpu-1");

        await client.EmbedAsync("nomic-embed-text", ["only one"]);

        var request = Assert.Single(server.Requests);
        Assert.Equal(HttpMethod.Post, request.Method);
        Assert.Equal(new Uri("http://proxy.test/gpu-1" + EmbedPath), request.Uri);
        Assert.Equal("application/json", request.MediaType);
        using var body = JsonDocument.Parse(request.Body!);
        Assert.Equal("nomic-embed-text", body.RootElement.GetProperty("model").GetString());
        Assert.Equal("""["only one"]""", body.RootElement.GetProperty("input").GetRawText());
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.NotFound)]
    [InlineData(HttpStatusCode.InternalServerError)]
    public async Task Embed_ErrorStatus_ReportsStatusAndBackendMessage(HttpStatusCode status)
    {
        var client = CreateClient(FakeModelServer.Answering(status, ErrorBody("model 'llama9' not found"), "application/json"));

        var result = await client.EmbedAsync("llama9", ["x"]);

        Assert.False(result.IsSuccess);
        Assert.Empty(result.Vectors);
        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "model 'llama9' not found", (int)status), result.Error);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    [InlineData(HttpStatusCode.TooManyRequests)]
    public async Task Embed_BusyStatus_ReportsBusy(HttpStatusCode status)
    {
        var client = CreateClient(FakeModelServer.Answering(status, ErrorBody("server busy"), "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["x"]);

        Assert.Equal(new BackendError(BackendFailure.Busy, "server busy", (int)status), result.Error);
    }

    [Fact]
    public async Task Embed_ConnectionRefused_ReportsUnreachable()
    {
        var client = CreateClient(new SocketsHttpHandler(), $"http://127.0.0.1:{ClosedLoopbackPort()}/");

        var result = await client.EmbedAsync("nomic-embed-text", ["x"]);

        Assert.Equal(BackendFailure.Unreachable, result.Error?.Failure);
    }

    [Fact]
    public async Task Embed_NoResponseWithinIdleTimeout_ReportsStalled()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);

        var embedding = client.EmbedAsync("nomic-embed-text", ["x"]);
        await server.RequestArrived;
        Time.Advance(IdleTimeout);

        Assert.Equal(BackendFailure.Stalled, (await embedding).Error?.Failure);
    }

    [Fact]
    public async Task Embed_CallerCancelling_Throws()
    {
        var server = FakeModelServer.NeverAnswering();
        var client = CreateClient(server);
        using var caller = new CancellationTokenSource();

        var embedding = client.EmbedAsync("nomic-embed-text", ["x"], caller.Token);
        await server.RequestArrived;
        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => embedding);
    }

    [Theory]
    [InlineData("<!doctype html><html>Open WebUI</html>")]
    [InlineData("{\"unrelated\":true}")]
    public async Task Embed_NotAnEmbeddingAnswer_ReportsProtocolViolation(string body)
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["x"]);

        Assert.Equal(BackendFailure.ProtocolViolation, result.Error?.Failure);
        Assert.Empty(result.Vectors);
    }

    [Fact]
    public async Task Embed_FewerVectorsThanInputs_ReportsProtocolViolation()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, EmbeddingsBody(4, [1f, 2f]), "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["first", "second"]);

        Assert.Equal(BackendFailure.ProtocolViolation, result.Error?.Failure);
    }

    [Fact]
    public async Task Embed_NoInputs_Throws()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EmbeddingsBody(0), "application/json");

        await Assert.ThrowsAsync<ArgumentException>(() => CreateClient(server).EmbedAsync("nomic-embed-text", []));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task Relay_EmbeddingBody_IsDoneWithThePromptTokensOnly()
    {
        var body = EmbeddingsBody(9, [0.25f, -1.5f]);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(new RelayRequest(EmbedPath.TrimStart('/'), "{}"u8.ToArray(), Streaming: false)));

        Assert.Equal(body, RelayedText(chunks));
        Assert.Equal(0, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(9, 0), null), chunks[^1]);
    }
}
