using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Anteroom.Tests;

public sealed class BackendTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    [Fact]
    public async Task OpenAIProtocolBackend_ServesTheNativeChat()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("vllm", TestGateway.FastSimulator(), Slots: 4, Protocol: "openai"));

        using var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hello" }, ct);
        var events = await stream.ReadToEndAsync(ct);

        Assert.Equal("done", events[^1].Type);
        int tokens = events.Count(e => e.Type == "token");
        Assert.Equal(tokens, events[^1].Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task UnreachableBackend_IsMarkedUnhealthy_AndRequestsAreRefusedWith503AndRetryAfter()
    {
        var ct = Within30Seconds();
        using var closed = new TcpListener(System.Net.IPAddress.Loopback, 0);
        closed.Start();
        int port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?>
            {
                ["Anteroom:Backends:0:Url"] = $"http://127.0.0.1:{port}/",
                ["Anteroom:Health:ProbeSeconds"] = "7",
            });
        await gateway.WaitForSchedulerAsync(s => !s.Backends[0].Healthy, ct);

        using var response = await gateway.Client("a").PostAsJsonAsync("chat/stream", new { message = "hello" }, ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        // Not the next probe, 7 s away: the trial request, due a cool-down (3 s) after the failed probe.
        Assert.InRange(response.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        Assert.Equal("no_healthy_backend", body.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task NoBackendConfigured_StartsTheEmbeddedSimulator_AndSaysSo()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync([], new Dictionary<string, string?>());

        using var models = JsonDocument.Parse(await gateway.Client("a").GetStringAsync("models", ct));
        using var status = JsonDocument.Parse(await gateway.Client("a").GetStringAsync("queue/status", ct));

        Assert.True(models.RootElement.GetProperty("simulated").GetBoolean());
        Assert.True(status.RootElement.GetProperty("simulated").GetBoolean());
        Assert.Equal("simulator", status.RootElement.GetProperty("backends")[0].GetProperty("name").GetString());
    }

    [Fact]
    public async Task Root_ServesTheChatPageToBrowsers_AndOllamasAnswerToClients()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

        using var browser = new HttpRequestMessage(HttpMethod.Get, "");
        browser.Headers.Add("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        using var page = await gateway.Client().SendAsync(browser, ct);
        string html = await page.Content.ReadAsStringAsync(ct);
        string probe = await gateway.Client().GetStringAsync("", ct);

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<title>Anteroom</title>", html);
        Assert.Contains("app.js", html);
        // API clients asking the root get Ollama's answer: Anteroom stands in for it.
        Assert.Equal("Ollama is running", probe);
    }
}
