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
}
