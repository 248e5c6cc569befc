using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Anteroom.Tests.DropIn;

/// <summary>A caller's own limits are refused at once on the drop-in APIs, in each API's shape, with Retry-After.</summary>
public sealed class UserLimitTests
{
    [Theory]
    [InlineData(DropInGateway.OnOllamaBackend)]
    [InlineData(DropInGateway.OnOpenAIBackend)]
    public async Task SecondWaitingRequest_OverTheUsersLimit_Gets429InEachApisShape(string model)
    {
        var ct = DropInGateway.Within30Seconds();
        await using var gateway = await DropInGateway.StartAsync(new Dictionary<string, string?> { ["Anteroom:Queue:MaxWaitingPerUser"] = "1" });
        gateway.Simulator(DropInGateway.BackendOf(model)).Hold();
        var greedy = gateway.Client("greedy");
        using var running = await DropInHttp.OpenAIStreamAsync(greedy, model, ct);
        using var waiting = await DropInHttp.OllamaStreamAsync(greedy, model, ct);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);
        var messages = new[] { new { role = "user", content = "one more" } };

        using var openAI = await greedy.PostAsJsonAsync("v1/chat/completions", new { model, messages }, ct);
        using var ollama = await greedy.PostAsJsonAsync("api/chat", new { model, messages }, ct);
        using var someoneElse = await DropInHttp.OllamaStreamAsync(gateway.Client("patient"), model, ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, openAI.StatusCode);
        using (var body = JsonDocument.Parse(await openAI.Content.ReadAsStringAsync(ct)))
        {
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(("rate_limit_error", "user_queue_full"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        }

        Assert.True(openAI.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.True(openAI.Headers.Contains("retry-after-ms"));
        Assert.Equal(HttpStatusCode.TooManyRequests, ollama.StatusCode);
        using (var body = JsonDocument.Parse(await ollama.Content.ReadAsStringAsync(ct)))
        {
            Assert.Contains("waiting", body.RootElement.GetProperty("error").GetString());
        }

        Assert.True(ollama.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        // The limit is the caller's own: another user is still admitted.
        Assert.Equal(HttpStatusCode.OK, someoneElse.StatusCode);
        gateway.Simulator(DropInGateway.BackendOf(model)).Release();
    }
}
