using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Anteroom.Tests.DropIn;

namespace Anteroom.Tests;

/// <summary>
/// Long answers streamed through the gateway as fast as the backend makes them, each translated into the client's
/// API: every frame goes out whole, however Kestrel's response buffer happens to be split when it is written, and
/// the stream ends with its API's final frame.
/// </summary>
public sealed class LongStreamTests
{
    private const int Tokens = 5_000;

    private static Task<TestGateway> StartAsync() =>
        DropInGateway.StartAsync(
            new Dictionary<string, string?> { ["Anteroom:Queue:MaxOutputTokens"] = Tokens.ToString(CultureInfo.InvariantCulture) },
            simulator =>
            {
                // Drawn lengths stay within ±50 % of the mean, so every answer is cut at exactly the limit asked.
                simulator.OutputTokens = 2 * Tokens;
                simulator.TokensPerSecond = 50_000;
            });

    private static async Task<string> PostAsync(TestGateway gateway, string path, string body, CancellationToken ct)
    {
        using var response = await gateway.Client("a").PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync(ct);
    }

    private static void AssertBackendGeneratedAll(TestGateway gateway, string backend)
    {
        var stats = gateway.Simulator(backend).Stats;
        Assert.True(stats is { Completed: 1, Failed: 0, Cancelled: 0 }, stats.ToString());
        Assert.Equal(Tokens, stats.TokensGenerated);
    }

    [Fact]
    public async Task AnOllamaClient_OnAnOpenAIBackend_GetsEveryTokenLineAndTheDoneLine()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync();

        string text = await PostAsync(
            gateway,
            "api/chat",
            $$$"""{"model":"{{{DropInGateway.OnOpenAIBackend}}}","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":{{{Tokens}}}}}""",
            ct);

        Assert.True(text.EndsWith("}\n", StringComparison.Ordinal), text[^Math.Min(200, text.Length)..]);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        var final = lines[^1];
        Assert.True(final.GetProperty("done").GetBoolean(), final.ToString());
        Assert.Equal(Tokens, final.GetProperty("eval_count").GetInt32());
        var tokens = lines[..^1];
        Assert.All(tokens, line => Assert.False(line.GetProperty("done").GetBoolean()));
        Assert.Equal(Tokens, tokens.Count);
        AssertBackendGeneratedAll(gateway, DropInGateway.OpenAIBackend);
    }

    [Fact]
    public async Task AnOpenAIClient_OnAnOllamaBackend_GetsEveryTokenChunkAndDone()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync();

        string text = await PostAsync(
            gateway,
            "v1/chat/completions",
            $$"""{"model":"{{DropInGateway.OnOllamaBackend}}","stream":true,"stream_options":{"include_usage":true},"max_tokens":{{Tokens}},"messages":[{"role":"user","content":"hi"}]}""",
            ct);

        Assert.True(text.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal), text[^Math.Min(200, text.Length)..]);
        var frames = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(frame => frame.StartsWith("data: ", StringComparison.Ordinal)).ToList();
        var chunks = frames[..^1].Select(frame => JsonDocument.Parse(frame["data: ".Length..]).RootElement).ToList();
        int contentChunks = chunks.Count(chunk =>
            chunk.GetProperty("choices") is var choices
            && choices.GetArrayLength() > 0
            && choices[0].GetProperty("delta").TryGetProperty("content", out var content)
            && content.ValueKind == JsonValueKind.String);
        Assert.Equal(Tokens, contentChunks);
        Assert.Equal(Tokens, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        AssertBackendGeneratedAll(gateway, DropInGateway.OllamaBackend);
    }

    [Theory]
    [InlineData(DropInGateway.OnOllamaBackend)]
    [InlineData(DropInGateway.OnOpenAIBackend)]
    public async Task ANativeStream_GetsEveryTokenEventAndDone(string model)
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync();

        string text = await PostAsync(gateway, "chat/stream", $$"""{"message":"hi","model":"{{model}}","max_tokens":{{Tokens}}}""", ct);

        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(frame => frame.StartsWith("event: ", StringComparison.Ordinal)).ToList();
        Assert.True(events.Count > 0 && events[^1].StartsWith("event: done\n", StringComparison.Ordinal), text[^Math.Min(300, text.Length)..]);
        Assert.Equal(Tokens, events.Count(frame => frame.StartsWith("event: token\n", StringComparison.Ordinal)));
        var done = JsonDocument.Parse(events[^1][(events[^1].IndexOf("\ndata: ", StringComparison.Ordinal) + "\ndata: ".Length)..]).RootElement;
        Assert.Equal(Tokens, done.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        AssertBackendGeneratedAll(gateway, DropInGateway.BackendOf(model));
    }
}
