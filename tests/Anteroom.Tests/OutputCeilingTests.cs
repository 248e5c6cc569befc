using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Anteroom.Tests;

/// <summary>No answer is unbounded: without a tier cap the gateway's output ceiling holds on every path.</summary>
public sealed class OutputCeilingTests
{
    private static Task<TestGateway> StartAsync() => TestGateway.StartAsync(
        [new TestBackend("gpu", TestGateway.FastSimulator(outputTokens: 400))],
        new Dictionary<string, string?> { ["Anteroom:Queue:MaxOutputTokens"] = "20" });

    [Theory]
    [InlineData(-1)]
    [InlineData(-2)]
    [InlineData(null)]
    public async Task AnOllamaRequestAskingForNoLimit_GetsAtMostTheCeiling(int? numPredict)
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
        await using var gateway = await StartAsync();
        object body = numPredict is { } n
            ? new { model = "llama3.1:8b", prompt = "tell me everything", stream = false, options = new { num_predict = n } }
            : new { model = "llama3.1:8b", prompt = "tell me everything", stream = false };

        using var response = await gateway.Client().PostAsJsonAsync("api/generate", body, ct);
        using var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(20, answer.RootElement.GetProperty("eval_count").GetInt32());
        Assert.Equal("length", answer.RootElement.GetProperty("done_reason").GetString());
    }

    [Fact]
    public async Task ARequestAskingForMoreThanTheCeiling_IsRefusedWith400NamingTheField()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
        await using var gateway = await StartAsync();

        using var response = await gateway.Client().PostAsJsonAsync(
            "v1/chat/completions", new { model = "llama3.1:8b", max_tokens = 21, messages = new[] { new { role = "user", content = "hi" } } }, ct);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("max_tokens_too_large", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("max_tokens", error.RootElement.GetProperty("error").GetProperty("param").GetString());
    }
}
