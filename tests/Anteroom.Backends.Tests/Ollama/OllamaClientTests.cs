using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.Ollama;

public sealed partial class OllamaClientTests : ModelServerClientContractTests
{
    private const string Head = "{\"model\":\"llama3.1:8b\",\"created_at\":\"2025-01-01T00:00:00.000000Z\",\"message\":{\"role\":\"assistant\",\"content\":";

    private protected override BackendProtocol Protocol => BackendProtocol.Ollama;

    private protected override string StreamMediaType => "application/x-ndjson";

    private protected override string ChatPath => "/api/chat";

    private protected override string ModelsPath => "/api/tags";

    private protected override string GarbageEvent => "<html>502 Bad Gateway</html>\n";

    private protected override string TokenEvent(string text) => $"{Head}{Json(text)}}},\"done\":false}}\n";

    private protected override string EndEvents(string? finishReason, GenerationUsage usage) =>
        Head + "\"\"},\"done\":true"
        + (finishReason is null ? "" : $",\"done_reason\":\"{finishReason}\"")
        + ",\"total_duration\":513000000,\"load_duration\":12000000"
        + $",\"prompt_eval_count\":{usage.PromptTokens},\"prompt_eval_duration\":9000000"
        + $",\"eval_count\":{usage.CompletionTokens},\"eval_duration\":480000000}}\n";

    private protected override string StreamErrorEvent(string message) => $"{{\"error\":{Json(message)}}}\n";

    private protected override string ErrorBody(string message) => $"{{\"error\":{Json(message)}}}";

    private protected override string ModelsBody(params string[] names) =>
        "{\"models\":["
        + string.Join(',', names.Select(name => $"{{\"name\":{Json(name)},\"model\":{Json(name)},\"size\":4920753328,\"digest\":\"abc\",\"details\":{{\"family\":\"llama\"}}}}"))
        + "]}";

    [Fact]
    public async Task StreamChat_Limits_PostsStreamingChatWithNumPredictAndTemperature()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server);

        await CollectAsync(client.StreamChatAsync(Request(maxOutputTokens: 64, temperature: 0.2)));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        var root = body.RootElement;
        Assert.Equal("llama3.1:8b", root.GetProperty("model").GetString());
        Assert.True(root.GetProperty("stream").GetBoolean());
        Assert.Equal(
            """[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hi"}]""",
            root.GetProperty("messages").GetRawText());
        Assert.Equal(64, root.GetProperty("options").GetProperty("num_predict").GetInt32());
        Assert.Equal(0.2, root.GetProperty("options").GetProperty("temperature").GetDouble());
    }

    [Fact]
    public async Task StreamChat_NoLimits_LeavesOptionsOut()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server);

        await CollectAsync(client.StreamChatAsync(Request()));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.False(body.RootElement.TryGetProperty("options", out _));
    }

    [Fact]
    public async Task StreamChat_OnlyTemperature_SendsNoNumPredict()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server);

        await CollectAsync(client.StreamChatAsync(Request(temperature: 0)));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.Equal("""{"temperature":0}""", body.RootElement.GetProperty("options").GetRawText());
    }

    [Fact]
    public async Task StreamChat_BlankLinesAndCrLf_AreTolerated()
    {
        var wire = "\n" + TokenEvent("Hi").Replace("\n", "\r\n") + "  \r\n\n" + EndEvents("stop", new(2, 1)).Replace("\n", "\r\n");

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_ChunksWithEmptyContent_AreSkipped()
    {
        var chunks = await StreamAsync(TokenEvent("") + TokenEvent("Hi") + TokenEvent("") + EndEvents("stop", new(2, 1)));

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_DoneLineCarryingText_YieldsTheTokenThenDone()
    {
        var wire = $"{Head}\"Bye\"}},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":4,\"eval_count\":1}}\n";

        var chunks = await StreamAsync(wire);

        Assert.Equal([GenerationChunk.Token("Bye"), GenerationChunk.Done("stop", new(4, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_DoneWithoutPromptCount_CountsTheCachedPromptAsZero()
    {
        var chunks = await StreamAsync($"{Head}\"\"}},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":9}}\n");

        Assert.Equal([GenerationChunk.Done("stop", new(0, 9))], chunks);
    }

    [Fact]
    public async Task StreamChat_DoneWithoutCounts_HasNoUsage()
    {
        var chunks = await StreamAsync("{\"done\":true,\"done_reason\":\"load\"}\n");

        Assert.Equal([GenerationChunk.Done("load", null)], chunks);
    }

    [Fact]
    public async Task StreamChat_FinalLineWithoutNewline_IsAccepted()
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + EndEvents("stop", new(2, 1)).TrimEnd('\n'));

        Assert.Equal([GenerationChunk.Token("Hi"), GenerationChunk.Done("stop", new(2, 1))], chunks);
    }

    [Fact]
    public async Task StreamChat_StreamCutInTheMiddleOfALine_ReportsDisconnected()
    {
        var end = EndEvents("stop", new(2, 1));

        var chunks = await StreamAsync(TokenEvent("Hi") + end[..(end.Length / 2)]);

        Assert.Equal(GenerationChunk.Token("Hi"), chunks[0]);
        AssertFailed(BackendFailure.Disconnected, chunks[1]);
    }

    [Theory]
    [InlineData("[1,2,3]\n")]
    [InlineData("null\n")]
    [InlineData("{\"done\":false} trailing\n")]
    [InlineData("data: {\"done\":true}\n")]
    public async Task StreamChat_LineThatIsNotAChunkObject_ReportsProtocolViolation(string line)
    {
        var chunks = await StreamAsync(TokenEvent("Hi") + line + EndEvents("stop", new(1, 1)));

        Assert.Equal(2, chunks.Count);
        AssertFailed(BackendFailure.ProtocolViolation, chunks[1]);
    }

    [Fact]
    public async Task StreamChat_LineLongerThanAMegabyte_ReportsProtocolViolation()
    {
        var chunks = await StreamAsync(new string('x', 1_100_000));

        AssertFailed(BackendFailure.ProtocolViolation, Assert.Single(chunks));
    }

    private static string Json(string text) => JsonSerializer.Serialize(text, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
