using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Hardening;

/// <summary>A whole (non-streamed) relayed answer is held complete, so its size is bounded by Stream:MaxAnswerBytes.</summary>
public sealed class AnswerSizeTests
{
    // Answers of 200 tokens of 1,000 characters each: about 200 KB, over the 64 KiB the gateway is allowed to hold.
    private static Task<TestGateway> StartAsync() => StartWithAccessAsync(
        new Dictionary<string, string?> { ["Anteroom:Stream:MaxAnswerBytes"] = "65536" },
        keysMode: false,
        simulator: s => (s.OutputTokens, s.TokenChars) = (200, 1000));

    [Theory]
    [InlineData("v1/chat/completions", OnOpenAIBackend)]
    [InlineData("api/chat", OnOllamaBackend)]
    public async Task AWholeAnswerOverTheBound_Fails502AnswerTooLarge_WithoutRetryingOrMarkingTheBackendDown(string path, string model)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var client = gateway.Client();

        using var tooLarge = await client.PostAsJsonAsync(path, new { model, stream = false, messages = new[] { new { role = "user", content = "everything" } } }, ct);
        using var small = await client.PostAsJsonAsync(path, new { model, stream = false, max_tokens = 10, options = new { num_predict = 10 }, messages = new[] { new { role = "user", content = "a little" } } }, ct);

        Assert.Equal(HttpStatusCode.BadGateway, tooLarge.StatusCode);
        var error = await ErrorAsync(tooLarge, ct);
        string text = path.StartsWith("api/", StringComparison.Ordinal) ? error.GetString()! : error.GetProperty("message").GetString()!;
        Assert.Contains("larger than the 65536 bytes", text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        var counts = await gateway.Queue.GetCountsAsync(ct);
        Assert.Equal((0L, 1L, 1L), (counts.Requeued, counts.Failed, counts.Completed));
        // The answer was the request's doing: the backend's record stays clean.
        var pool = gateway.Services.GetRequiredService<Anteroom.Gateway.BackendPool>();
        Assert.Equal(0, pool.CircuitWindow(BackendOf(model)).Failed);
    }
}
