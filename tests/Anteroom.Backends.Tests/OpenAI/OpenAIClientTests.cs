using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.OpenAI;

public sealed partial class OpenAIClientTests : ModelServerClientContractTests
{
    private const string Head = """data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1735689600,"model":"llama3.1:8b","choices":""";

    private protected override BackendProtocol Protocol => BackendProtocol.OpenAI;

    private protected override string StreamMediaType => "text/event-stream";

    private protected override string ChatPath => "/v1/chat/completions";

    private protected override string ModelsPath => "/v1/models";

    private protected override string GarbageEvent => "data: {\"choices\":[{\"delta\":\n\n";

    private protected override string TokenEvent(string text) =>
        $"{Head}[{{\"index\":0,\"delta\":{{\"content\":{Json(text)}}},\"finish_reason\":null}}]}}\n\n";

    private protected override string EndEvents(string? finishReason, GenerationUsage usage) =>
        (finishReason is null ? "" : $"{Head}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{finishReason}\"}}]}}\n\n")
        + $"{Head}[],\"usage\":{{\"prompt_tokens\":{usage.PromptTokens},\"completion_tokens\":{usage.CompletionTokens},\"total_tokens\":{usage.TotalTokens}}}}}\n\n"
        + "data: [DONE]\n\n";

    // vLLM's shape: the error event, then [DONE] as usual.
    private protected override string StreamErrorEvent(string message) =>
        $"data: {{\"error\":{{\"message\":{Json(message)},\"type\":\"api_error\",\"param\":null,\"code\":500}}}}\n\ndata: [DONE]\n\n";

    private protected override string ErrorBody(string message) =>
        $"{{\"error\":{{\"message\":{Json(message)},\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}}}";

    private protected override string ModelsBody(params string[] names) =>
        "{\"object\":\"list\",\"data\":["
        + string.Join(',', names.Select(name => $"{{\"id\":{Json(name)},\"object\":\"model\",\"created\":1735689600,\"owned_by\":\"vllm\"}}"))
        + "]}";

    [Fact]
    public async Task StreamChat_Limits_PostsStreamingChatAskingForUsage()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server);

        await CollectAsync(client.StreamChatAsync(Request(maxOutputTokens: 64, temperature: 0.2)));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        var root = body.RootElement;
        Assert.Equal("llama3.1:8b", root.GetProperty("model").GetString());
        Assert.True(root.GetProperty("stream").GetBoolean());
        Assert.True(root.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(
            """[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}]""",
            root.GetProperty("messages").GetRawText());
        Assert.Equal(64, root.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.2, root.GetProperty("temperature").GetDouble());
    }

    [Fact]
    public async Task StreamChat_NoLimits_LeavesMaxTokensAndTemperatureOut()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server);

        await CollectAsync(client.StreamChatAsync(Request()));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.False(body.RootElement.TryGetProperty("max_tokens", out _));
        Assert.False(body.RootElement.TryGetProperty("temperature", out _));
    }

    [Fact]
    public async Task StreamChat_CommentsAndOtherFields_AreIgnored()
    {
        var wire = ": keep-alive\n\nevent: message\nid: 1\nretry: 3000\n" + TokenEvent("Hi") + ": still here\n\n" + EndEvents("stop", new(2, 1));

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_CrLfAndNoSpaceAfterColon_AreAccepted()
    {
        var wire = (TokenEvent("Hi") + EndEvents("stop", new(2, 1))).Replace("data: ", "data:").Replace("\n", "\r\n");

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_DataSplitOverSeveralLines_IsJoined()
    {
        var wire = "data: {\"choices\":[{\"index\":0,\n" + "data: \"delta\":{\"content\":\"Hi\"}}]}\n\n" + EndEvents("stop", new(2, 1));

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_RoleOnlyAndEmptyDeltas_AreSkipped()
    {
        var wire = $"{Head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
            + $"{Head}[{{\"index\":0,\"delta\":{{\"role\":\"assistant\"}},\"finish_reason\":null}}]}}\n\n"
            + TokenEvent("Hi")
            + EndEvents("stop", new(2, 1));

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_FinishReasonOnTheLastContentChunk_IsKept()
    {
        var wire = $"{Head}[{{\"index\":0,\"delta\":{{\"content\":\"Hi\"}},\"finish_reason\":\"length\"}}]}}\n\ndata: [DONE]\n\n";

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("length", null)], chunks);
    }

    [Fact]
    public async Task StreamChat_ServerIgnoringIncludeUsage_EndsWithoutUsage()
    {
        var wire = TokenEvent("Hi") + $"{Head}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n";

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", null)], chunks);
    }

    [Fact]
    public async Task StreamChat_ErrorAsAString_ReportsStreamError()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + "data: {\"error\":\"model crashed\"}\n\n");

        Assert.Equal(new BackendError(BackendFailure.StreamError, "model crashed"), chunks[^1].Error);
    }

    [Fact]
    public async Task StreamChat_EventsAfterDone_AreNotRead()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + "data: [DONE]\n\n" + TokenEvent("late") + "data: not json\n\n");

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", null)], chunks);
    }

    [Fact]
    public async Task StreamChat_SuccessThatIsNotAnEventStream_ReportsProtocolViolation()
    {
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, "<!doctype html><html></html>", "text/html"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        AssertFailed(BackendFailure.ProtocolViolation, Assert.Single(chunks));
    }

    [Fact]
    public async Task StreamChat_ErrorStatusWithBareMessage_ReportsTheMessage()
    {
        var body = """{"object":"error","message":"The model `llama9` does not exist.","type":"NotFoundError","param":null,"code":404}""";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.NotFound, body, "application/json"));

        var chunks = await CollectAsync(client.StreamChatAsync(Request()));

        Assert.Equal(new BackendError(BackendFailure.ErrorStatus, "The model `llama9` does not exist.", 404), Assert.Single(chunks).Error);
    }

    private static string Json(string text) => JsonSerializer.Serialize(text, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
