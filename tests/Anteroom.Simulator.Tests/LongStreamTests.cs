using System.Net;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests;

/// <summary>
/// Long answers streamed as fast as the server can write them: every frame goes out whole, however the response's
/// buffer happens to be split when it is written.
/// </summary>
public sealed class LongStreamTests
{
    private const int Tokens = 5_000;

    [Theory]
    [InlineData("/api/chat")]
    [InlineData("/api/generate")]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/completions")]
    public async Task AFastStreamOfThousandsOfTokens_ArrivesWholeAndEndsCleanly(string path)
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options =>
        {
            // Drawn lengths stay within ±50 % of the mean, so every answer is cut at exactly the limit asked below.
            options.OutputTokens = 2 * Tokens;
            options.TokensPerSecond = 50_000;
        });
        using var client = Sim.Client(server);
        string body = path switch
        {
            "/api/chat" => Sim.Chat(numPredict: Tokens),
            "/api/generate" => $"{{\"model\":\"{Sim.Model}\",\"prompt\":\"hi\",\"options\":{{\"num_predict\":{Tokens}}}}}",
            "/v1/chat/completions" => Sim.OpenAIChat(stream: true, extra: $",\"max_tokens\":{Tokens}"),
            _ => $"{{\"model\":\"{Sim.Model}\",\"prompt\":\"hi\",\"stream\":true,\"max_tokens\":{Tokens}}}",
        };

        using var response = await Sim.PostAsync(client, path, body, ct);
        string text = await response.Content.ReadAsStringAsync(ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stats = server.Stats;
        Assert.True(stats.Completed == 1 && stats.Failed == 0, stats.ToString());
        Assert.Equal(Tokens, stats.TokensGenerated);
        Assert.True(text.EndsWith(path.StartsWith("/api", StringComparison.Ordinal) ? "}\n" : "data: [DONE]\n\n", StringComparison.Ordinal), text[^Math.Min(200, text.Length)..]);
    }

    [Fact]
    public async Task WithTokenChars_EachTokenRepeatsItsWordToAtLeastThatLength()
    {
        var ct = Sim.Deadline();
        await using var plain = await Sim.StartAsync();
        await using var padded = await Sim.StartAsync(options => options.TokenChars = 100);
        using var plainClient = Sim.Client(plain);
        using var paddedClient = Sim.Client(padded);

        using var plainResponse = await Sim.PostAsync(plainClient, "/api/chat", Sim.Chat(), ct);
        using var paddedResponse = await Sim.PostAsync(paddedClient, "/api/chat", Sim.Chat(), ct);
        var words = (await Sim.NdjsonAsync(plainResponse, ct))[..^1].Select(Content).ToList();
        var tokens = (await Sim.NdjsonAsync(paddedResponse, ct))[..^1].Select(Content).ToList();

        Assert.Equal(words.Count, tokens.Count);
        Assert.All(words.Zip(tokens), pair =>
        {
            Assert.InRange(pair.Second.Length, 100, 100 + pair.First.Length - 1);
            Assert.Equal(pair.Second, string.Concat(Enumerable.Repeat(pair.First, pair.Second.Length / pair.First.Length)));
        });
    }

    private static string Content(System.Text.Json.JsonElement line) => line.GetProperty("message").GetProperty("content").GetString()!;
}
