using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests.OpenAI;

public sealed class OpenAIChatTests
{
    [Fact]
    public async Task ChatStream_FramesEveryEventAsDataAndEndsWithDone()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chunks = Sse.Chunks(await Sse.EventsAsync(response, ct));
        var id = chunks[0].GetProperty("id").GetString();
        var created = chunks[0].GetProperty("created").GetInt64();
        Assert.StartsWith("chatcmpl-", id, StringComparison.Ordinal);
        Assert.All(chunks, chunk =>
        {
            Assert.Equal(id, chunk.GetProperty("id").GetString());
            Assert.Equal(created, chunk.GetProperty("created").GetInt64());
            Assert.Equal("chat.completion.chunk", chunk.GetProperty("object").GetString());
            Assert.Equal(Sim.Model, chunk.GetProperty("model").GetString());
        });

        var first = Choice(chunks[0]);
        Assert.Equal("assistant", first.GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("finish_reason").ValueKind);
        var last = Choice(chunks[^1]);
        Assert.Equal("stop", last.GetProperty("finish_reason").GetString());
        Assert.False(last.GetProperty("delta").TryGetProperty("content", out _));
        var tokens = chunks[1..^1].Select(chunk => Choice(chunk).GetProperty("delta").GetProperty("content").GetString()).ToList();
        Assert.InRange(tokens.Count, 4, 12);
        Assert.All(tokens, token => Assert.StartsWith(" ", token, StringComparison.Ordinal));
        Assert.All(chunks, chunk => Assert.False(chunk.TryGetProperty("usage", out _)));
    }

    [Fact]
    public async Task ChatStream_IncludeUsage_AddsAUsageChunkWithNoChoicesBeforeDone()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true, extra: ""","stream_options":{"include_usage":true}"""), ct);

        var chunks = Sse.Chunks(await Sse.EventsAsync(response, ct));
        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(chunks[0].GetProperty("id").GetString(), usageChunk.GetProperty("id").GetString());
        var usage = usageChunk.GetProperty("usage");
        var contentChunks = chunks.Count(chunk => chunk.GetProperty("choices").EnumerateArray().Any(c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.GetString() != ""));
        Assert.Equal(contentChunks, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(
            usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(),
            usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal("stop", Choice(chunks[^2]).GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Chat_NonStreaming_ReturnsACompletionWithUsage()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(), ct);

        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var body = await Sim.JsonAsync(response, ct);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.True(body.GetProperty("created").GetInt64() > 0);
        var choice = Choice(body);
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var words = choice.GetProperty("message").GetProperty("content").GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        Assert.Equal(words, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(6, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("max_tokens")]
    [InlineData("max_completion_tokens")]
    public async Task ChatStream_TokenLimit_StopsAtExactlyThatManyTokensWithFinishReasonLength(string field)
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.OutputTokens = 64);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true, extra: $",\"{field}\":5"), ct);

        var chunks = Sse.Chunks(await Sse.EventsAsync(response, ct));
        Assert.Equal(5, chunks.Count(chunk => Choice(chunk).GetProperty("delta").TryGetProperty("content", out var t) && t.GetString() != ""));
        Assert.Equal("length", Choice(chunks[^1]).GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Chat_UnknownModel_Returns404InOpenAIShape()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(model: "gpt-nope"), ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = (await Sim.JsonAsync(response, ct)).GetProperty("error");
        Assert.Contains("gpt-nope", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("not_found_error", error.GetProperty("type").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("""{"model":"llama3.1:8b"}""", "messages")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}]}""", "model")]
    [InlineData("""{"model":"llama3.1:8b","messages":[{"role":"user","content":"hi"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"llama3.1:8b","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", "stream")]
    [InlineData("""{"model":"llama3.1:8b","messages":[{"content":"hi"}]}""", "messages[0].role")]
    public async Task Chat_InvalidRequest_Returns400NamingTheField(string body, string param)
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", body, ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await Sim.JsonAsync(response, ct)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Contains(param, error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_BadJson_Returns400WithNullParamAndCode()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", "{not json", ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await Sim.JsonAsync(response, ct)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
    }

    private static JsonElement Choice(JsonElement chunk) => Assert.Single(chunk.GetProperty("choices").EnumerateArray());
}
