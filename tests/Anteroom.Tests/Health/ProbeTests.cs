using System.Net;
using System.Text.Json;

namespace Anteroom.Tests.Health;

/// <summary>The probes a load balancer asks: unauthenticated, cheap, and honest about whether requests can be served.</summary>
public sealed class ProbeTests
{
    [Fact]
    public async Task Healthz_AndReadyz_AnswerWithoutAKey_AndReadyzCountsTheHealthyBackends()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())], new Dictionary<string, string?> { ["Anteroom:Auth:Mode"] = "keys" });

        using var health = await gateway.Client().GetAsync("healthz", timeout.Token);
        using var ready = await gateway.Client().GetAsync("readyz", timeout.Token);

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(timeout.Token));
        Assert.Equal("ready", body.RootElement.GetProperty("status").GetString());
        Assert.Equal("1 of 1 healthy", body.RootElement.GetProperty("checks").GetProperty("backends").GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Readyz_Is503_WhenNoBackendIsHealthy()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        await gateway.Queue.SetBackendHealthAsync("gpu", healthy: false, timeout.Token);

        using var ready = await gateway.Client().GetAsync("readyz", timeout.Token);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(timeout.Token));
        Assert.Equal("not_ready", body.RootElement.GetProperty("status").GetString());
        Assert.False(body.RootElement.GetProperty("checks").GetProperty("backends").GetProperty("ok").GetBoolean());
    }
}
