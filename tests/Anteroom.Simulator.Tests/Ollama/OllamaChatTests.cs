using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests.Ollama;

public sealed class OllamaChatTests
{
    private static readonly string[] TimingFields =
        ["total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"];

    [Fact]
    public async Task Chat_Streaming_SendsNdjsonTokenLinesThenADoneLineWithIntegerTimings()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        var lines = await Sim.NdjsonAsync(response, ct);
        var tokens = lines[..^1];
        Assert.NotEmpty(tokens);
        Assert.All(tokens, line =>
        {
            Assert.Equal(Sim.Model, line.GetProperty("model").GetString());
            Assert.False(line.GetProperty("done").GetBoolean());
            Assert.Equal("assistant", line.GetProperty("message").GetProperty("role").GetString());
            Assert.StartsWith(" ", line.GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);
            AssertRfc3339Utc(line.GetProperty("created_at").GetString());
        });

        var last = lines[^1];
        Assert.True(last.GetProperty("done").GetBoolean());
        Assert.Equal("stop", last.GetProperty("done_reason").GetString());
        Assert.Equal("", last.GetProperty("message").GetProperty("content").GetString());
        foreach (var field in TimingFields)
            Assert.True(last.GetProperty(field).TryGetInt64(out var value) && value >= 0, $"{field} is a non-negative integer");
        Assert.Equal(tokens.Count, last.GetProperty("eval_count").GetInt32());
        Assert.InRange(tokens.Count, 4, 12);
        Assert.True(last.GetProperty("total_duration").GetInt64() > 0);
    }

    [Fact]
    public async Task Chat_StreamFalse_ReturnsOneObjectWithTheWholeText()
    {
        var ct = Sim.Deadline();
        await using var streamed = await Sim.StartAsync();
        await using var single = await Sim.StartAsync();
        using var streamedClient = Sim.Client(streamed);
        using var singleClient = Sim.Client(single);

        using var streamResponse = await Sim.PostAsync(streamedClient, "/api/chat", Sim.Chat(), ct);
        var streamedText = string.Concat((await Sim.NdjsonAsync(streamResponse, ct)).Select(line => line.GetProperty("message").GetProperty("content").GetString()));
        using var response = await Sim.PostAsync(singleClient, "/api/chat", Sim.Chat(stream: false), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = await Sim.JsonAsync(response, ct);
        Assert.True(body.GetProperty("done").GetBoolean());
        Assert.Equal("stop", body.GetProperty("done_reason").GetString());
        // Same seed and same request order: the same words, whether streamed or not.
        Assert.Equal(streamedText, body.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(streamedText.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length, body.GetProperty("eval_count").GetInt32());
        foreach (var field in TimingFields)
            Assert.Equal(JsonValueKind.Number, body.GetProperty(field).ValueKind);
    }

    [Fact]
    public async Task Chat_NumPredict_CapsTheOutputWithDoneReasonLength()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.OutputTokens = 64);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(numPredict: 3), ct);

        var lines = await Sim.NdjsonAsync(response, ct);
        Assert.Equal(4, lines.Count);
        Assert.Equal("length", lines[^1].GetProperty("done_reason").GetString());
        Assert.Equal(3, lines[^1].GetProperty("eval_count").GetInt32());
    }

    [Fact]
    public async Task Chat_PromptEvalCount_IsAboutOneTokenPerFourCharacters()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false, content: new string('x', 400)), ct);

        Assert.Equal(100, (await Sim.JsonAsync(response, ct)).GetProperty("prompt_eval_count").GetInt32());
    }

    [Fact]
    public async Task Chat_UnknownModel_Returns404WithOllamasText()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(model: "nope:1b"), ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("""{"error":"model 'nope:1b' not found"}""", await response.Content.ReadAsStringAsync(ct));
        Assert.Equal(0, server.Stats.Completed + server.Stats.Failed + server.Stats.Cancelled);
    }

    [Fact]
    public async Task Chat_ModelWithoutTag_MatchesTheLatestTag()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.Models = ["qwen2.5"]);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(model: "qwen2.5:latest", stream: false), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("qwen2.5:latest", (await Sim.JsonAsync(response, ct)).GetProperty("model").GetString());
    }

    [Theory]
    [InlineData("{\"model\":", "invalid JSON")]
    [InlineData("{\"model\":\"llama3.1:8b\",\"stream\":\"yes\"}", "'stream'")]
    [InlineData("{\"messages\":[]}", "model is required")]
    public async Task Chat_BadRequest_Returns400WithAnErrorObject(string body, string expected)
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", body, ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, (await Sim.JsonAsync(response, ct)).GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_WithoutMessages_AnswersLoadAtOnce()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", $"{{\"model\":\"{Sim.Model}\"}}", ct);

        var body = await Sim.JsonAsync(response, ct);
        Assert.True(body.GetProperty("done").GetBoolean());
        Assert.Equal("load", body.GetProperty("done_reason").GetString());
    }

    private static void AssertRfc3339Utc(string? text)
    {
        Assert.NotNull(text);
        Assert.EndsWith("Z", text, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out _), text);
    }
}
