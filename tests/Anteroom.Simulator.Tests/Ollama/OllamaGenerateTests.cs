using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests.Ollama;

public sealed class OllamaGenerateTests
{
    private const string Request = """{"model":"llama3.1:8b","prompt":"Why is the sky blue?"}""";

    [Fact]
    public async Task Generate_Streaming_UsesResponseAndEndsWithContextAndTimings()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/generate", Request, ct);

        Assert.Equal("application/x-ndjson", response.Content.Headers.ContentType?.MediaType);
        var lines = await Sim.NdjsonAsync(response, ct);
        Assert.All(lines[..^1], line =>
        {
            Assert.False(line.GetProperty("done").GetBoolean());
            Assert.False(string.IsNullOrEmpty(line.GetProperty("response").GetString()));
            Assert.False(line.TryGetProperty("message", out _));
        });
        var last = lines[^1];
        Assert.True(last.GetProperty("done").GetBoolean());
        Assert.Equal("", last.GetProperty("response").GetString());
        var promptTokens = last.GetProperty("prompt_eval_count").GetInt32();
        var evalCount = last.GetProperty("eval_count").GetInt32();
        Assert.Equal(lines.Count - 1, evalCount);
        Assert.Equal(promptTokens + evalCount, last.GetProperty("context").GetArrayLength());
        Assert.True(last.GetProperty("eval_duration").TryGetInt64(out _));
    }

    [Fact]
    public async Task Generate_StreamFalse_ReturnsTheWholeResponseInOneObject()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/generate", """{"model":"llama3.1:8b","prompt":"Hi","stream":false,"options":{"num_predict":5}}""", ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await Sim.JsonAsync(response, ct);
        Assert.True(body.GetProperty("done").GetBoolean());
        Assert.Equal("length", body.GetProperty("done_reason").GetString());
        Assert.Equal(5, body.GetProperty("response").GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(JsonValueKind.Array, body.GetProperty("context").ValueKind);
    }
}
