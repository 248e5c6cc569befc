using System.Net;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.OpenAI;

public sealed partial class OpenAIClientTests
{
    private const string CompletionHead = """data: {"id":"cmpl-7","object":"text_completion","created":1735689600,"model":"llama3.1:8b","choices":""";

    private protected override string FrameTerminator => "\n\n";

    private protected override string EmbedPath => "/v1/embeddings";

    private protected override string ChatBody(string text, string finishReason, GenerationUsage usage) =>
        "{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion\",\"created\":1735689600,\"model\":\"llama3.1:8b\""
        + $",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{Json(text)}}},\"finish_reason\":\"{finishReason}\"}}]"
        + $",\"usage\":{{\"prompt_tokens\":{usage.PromptTokens},\"completion_tokens\":{usage.CompletionTokens},\"total_tokens\":{usage.TotalTokens}}}}}";

    private protected override string EmbeddingsBody(int promptTokens, params float[][] vectors) =>
        "{\"object\":\"list\",\"data\":["
        + string.Join(',', vectors.Select((vector, index) =>
            $"{{\"object\":\"embedding\",\"embedding\":{JsonSerializer.Serialize(vector)},\"index\":{index}}}"))
        + $"],\"model\":\"nomic-embed-text\",\"usage\":{{\"prompt_tokens\":{promptTokens},\"total_tokens\":{promptTokens}}}}}";

    private static string CompletionEvent(string text, string? finishReason = null) =>
        $"{CompletionHead}[{{\"index\":0,\"text\":{Json(text)},\"logprobs\":null,\"finish_reason\":{(finishReason is null ? "null" : Json(finishReason))}}}]}}\n\n";

    private static string CompletionUsage(GenerationUsage usage) =>
        $"{CompletionHead}[],\"usage\":{{\"prompt_tokens\":{usage.PromptTokens},\"completion_tokens\":{usage.CompletionTokens},\"total_tokens\":{usage.TotalTokens}}}}}\n\n";

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Relay_CommentsCrLfAndMultiLineData_AreRelayedVerbatimInWholeEvents(int seed)
    {
        string[] frames =
        [
            ": keep-alive\r\n\r\n",
            "\n",
            TokenEvent("Hi").Replace("\n", "\r\n"),
            "event: message\nretry: 3000\ndata: {\"choices\":[{\"index\":0,\n" + "data:\"delta\":{\"content\":\" there\"}}]}\n\n",
            "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}]}\r\r",
            "data: [DONE]\r\n\r\n",
        ];
        var wire = string.Concat(frames);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, new TricklingBody(wire, seed), StreamMediaType));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(wire, RelayedText(chunks));
        AssertWholeFrames(chunks, frames);
        Assert.Equal(3, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(null, "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_EventsAfterDone_AreNotRelayed()
    {
        var chunks = await RelayAsync(TokenEvent("Hi") + "data: [DONE]\n\n" + TokenEvent("late") + "data: not json\n\n");

        Assert.Equal(TokenEvent("Hi") + "data: [DONE]\n\n", RelayedText(chunks));
        Assert.Equal(RelayChunk.Done(null, null), chunks[^1]);
    }

    [Fact]
    public async Task Relay_StreamWithoutUsageChunk_EndsWithTheLastFinishReasonAndNoUsage()
    {
        var wire = TokenEvent("Hi") + $"{Head}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"length\"}}]}}\n\n" + TokenEvent("") + "data: [DONE]\n\n";

        var chunks = await RelayAsync(wire);

        Assert.Equal(RelayChunk.Done(null, "length"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_CompletionStream_CountsTheTextPieces()
    {
        var wire = CompletionEvent("Once") + CompletionEvent("") + CompletionEvent(" upon", "length") + CompletionUsage(new(4, 2)) + "data: [DONE]\n\n";

        var chunks = await RelayAsync(wire, new RelayRequest("v1/completions", "{}"u8.ToArray(), Streaming: true));

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(2, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(4, 2), "length"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_ErrorAsTheLastEvent_IsReportedAsAlreadyRelayed()
    {
        var wire = TokenEvent("Hi") + "data: {\"error\":\"model crashed\"}\n\n";

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(RelayChunk.Failed(new BackendError(BackendFailure.StreamError, "model crashed"), errorWasRelayed: true), chunks[^1]);
    }

    [Fact]
    public async Task Relay_DoneWithoutItsBlankLine_StillEndsTheStream()
    {
        var wire = TokenEvent("Hi") + "data: [DONE]\n";

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(RelayChunk.Done(null, null), chunks[^1]);
    }

    [Fact]
    public async Task Relay_SingleCompletionBody_IsDoneWithItsUsage()
    {
        var body = """{"id":"cmpl-7","object":"text_completion","created":1735689600,"model":"llama3.1:8b","choices":[{"index":0,"text":"Once upon","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(new RelayRequest("v1/completions", "{}"u8.ToArray(), Streaming: false)));

        Assert.Equal(body, RelayedText(chunks));
        Assert.Equal(2, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(4, 2), "length"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_SingleBodyWithoutUsage_CountsNoPieces()
    {
        var body = """{"id":"chatcmpl-7","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat(streaming: false)));

        Assert.Equal(0, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(null, "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Embed_VectorsListedOutOfOrder_AreReturnedInInputOrder()
    {
        var body = """{"object":"list","data":[{"object":"embedding","embedding":[2.0],"index":1},{"object":"embedding","embedding":[1.0],"index":0}],"usage":{"prompt_tokens":2,"total_tokens":2}}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["first", "second"]);

        Assert.Equal(new[] { new[] { 1f }, new[] { 2f } }, result.Vectors);
    }

    [Fact]
    public async Task Embed_DuplicateIndexes_ReportProtocolViolation()
    {
        var body = """{"object":"list","data":[{"embedding":[2.0],"index":0},{"embedding":[1.0],"index":0}]}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["first", "second"]);

        Assert.Equal(BackendFailure.ProtocolViolation, result.Error?.Failure);
    }

    [Fact]
    public async Task Embed_Request_AsksForFloats()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EmbeddingsBody(1, [1f]), "application/json");

        await CreateClient(server).EmbedAsync("nomic-embed-text", ["x"]);

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.Equal("float", body.RootElement.GetProperty("encoding_format").GetString());
    }

    [Fact]
    public async Task Embed_Base64Vectors_ReportProtocolViolation()
    {
        var body = """{"object":"list","data":[{"object":"embedding","embedding":"AACAPw==","index":0}]}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json"));

        var result = await client.EmbedAsync("nomic-embed-text", ["x"]);

        Assert.Equal(BackendFailure.ProtocolViolation, result.Error?.Failure);
    }
}
