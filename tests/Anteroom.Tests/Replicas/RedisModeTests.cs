using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Identity;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Anteroom.Tests.Replicas;

/// <summary>Replicas sharing one Redis: what a browser or a client sees does not depend on which replica answers.</summary>
public sealed class RedisModeTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task ABrowserSessionIssuedByOneReplica_IsTheSameUserOnAnother_ThoughEachHasItsOwnDataDirectory()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        string prefix = RedisFixture.NewPrefix();
        var settings = Settings(prefix);
        await using var first = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);
        await using var second = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);

        using var issued = await first.Client().GetAsync("session", ct);
        Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
        string cookie = issued.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(BrowserSessions.CookieName + "=", StringComparison.Ordinal)).Split(';')[0];
        using var request = new HttpRequestMessage(HttpMethod.Get, "session");
        request.Headers.Add("Cookie", cookie);
        using var onSecond = await second.Client().SendAsync(request, ct);

        Assert.Equal(HttpStatusCode.OK, onSecond.StatusCode);
        Assert.Equal(await UserAsync(issued, ct), await UserAsync(onSecond, ct));
        Assert.False(onSecond.Headers.TryGetValues("Set-Cookie", out var reissued) && reissued.Any(c => c.StartsWith(BrowserSessions.CookieName + "=", StringComparison.Ordinal)));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Server.Configuration);
        Assert.Equal(1, await connection.GetDatabase().ListLengthAsync($"{prefix}:protection-keys"));
    }

    [Fact]
    public async Task ThreeReplicaProcesses_RecogniseOneBrowser_EvenAfterTheReplicaThatSignedItInIsKilled()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        await using var simulator = await Anteroom.Simulator.SimulatedModelServer.StartAsync(TestGateway.FastSimulator());
        var settings = new Dictionary<string, string?>(Settings(RedisFixture.NewPrefix()));
        foreach (var (key, value) in GatewayProcess.Backend(0, "gpu", simulator.BaseAddress, 1, "ollama", "llama3.1:8b"))
        {
            settings[key] = value;
        }

        await using var first = await GatewayProcess.StartAsync(settings);
        await using var second = await GatewayProcess.StartAsync(settings);
        await using var third = await GatewayProcess.StartAsync(settings);

        using var issued = await first.Client().GetAsync("session", ct);
        Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
        string cookie = issued.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(BrowserSessions.CookieName + "=", StringComparison.Ordinal)).Split(';')[0];
        string user = await UserAsync(issued, ct);
        await first.KillAsync();

        using var onSecond = await second.Client(cookie).GetAsync("session", ct);
        using var onThird = await third.Client(cookie).GetAsync("session", ct);

        Assert.Equal(user, await UserAsync(onSecond, ct));
        Assert.Equal(user, await UserAsync(onThird, ct));
    }

    [Fact]
    public async Task ThreeReplicaProcessesStartedTogether_AgreeOnOneCookieProtectionKey()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        await using var simulator = await Anteroom.Simulator.SimulatedModelServer.StartAsync(TestGateway.FastSimulator());
        string prefix = RedisFixture.NewPrefix();
        var settings = new Dictionary<string, string?>(Settings(prefix));
        foreach (var (key, value) in GatewayProcess.Backend(0, "gpu", simulator.BaseAddress, 1, "ollama", "llama3.1:8b"))
        {
            settings[key] = value;
        }

        var starting = Enumerable.Range(0, 3).Select(_ => GatewayProcess.StartAsync(settings)).ToList();
        try
        {
            await Task.WhenAll(starting);
        }
        finally
        {
            foreach (var started in starting.Where(s => s.IsCompletedSuccessfully))
            {
                await (await started).DisposeAsync();
            }
        }

        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Server.Configuration);
        Assert.Equal(1, await connection.GetDatabase().ListLengthAsync($"{prefix}:protection-keys"));
    }

    [Fact]
    public async Task TwoReplicasOnOneRedis_RunNoMoreThanTheBackendsSlotsBetweenThem_AndShowTheSameQueue()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        // The model server could run four at once: only the gateways' one slot keeps it to one.
        var simulator = TestGateway.FastSimulator();
        simulator.Parallel = 4;
        var settings = Settings(RedisFixture.NewPrefix());
        await using var first = await TestGateway.StartAsync([new TestBackend("gpu", simulator, Slots: 1)], settings);
        var server = first.Simulator("gpu");
        await using var second = await TestGateway.StartAsync(
            [new TestBackend("gpu", simulator, Slots: 1)], new Dictionary<string, string?>(settings) { ["Anteroom:Backends:0:Url"] = server.BaseAddress.ToString() });

        server.Hold();
        var answers = Enumerable.Range(0, 6)
            .Select(i => (i % 2 == 0 ? first : second).Client($"user{i}").PostAsJsonAsync(
                "v1/chat/completions", new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } }, ct))
            .ToList();
        await first.WaitForSchedulerAsync(s => s.Running == 1 && s.Waiting == 5, ct);
        using var onFirst = JsonDocument.Parse(await first.Client().GetStringAsync("queue/status", ct));
        using var onSecond = JsonDocument.Parse(await second.Client().GetStringAsync("queue/status", ct));
        server.Release();
        var responses = await Task.WhenAll(answers);

        foreach (var status in (JsonDocument[])[onFirst, onSecond])
        {
            Assert.Equal(5, status.RootElement.GetProperty("waiting").GetInt32());
            Assert.Equal(1, status.RootElement.GetProperty("running").GetInt32());
        }

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, server.Stats.PeakActive);
        Assert.Equal(6, server.Stats.Completed);
    }

    [Fact]
    public async Task WithRedisDown_ARequestGets503InItsApisShapeWithRetryAfter_AndTheGatewayRecoversByItselfWhenRedisReturns()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        await using var server = await Anteroom.TestServers.RedisServer.StartAsync();
        var settings = new Dictionary<string, string?> { ["Anteroom:Redis:Configuration"] = server.Configuration, ["Anteroom:Redis:Prefix"] = "down" };
        await using var gateway = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);
        var chat = new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } };
        using (var before = await gateway.Client("ada").PostAsJsonAsync("v1/chat/completions", chat, ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        using var readyBefore = await gateway.Client().GetAsync("readyz", ct);
        await server.KillAsync();
        using var during = await gateway.Client("ada").PostAsJsonAsync("v1/chat/completions", chat, ct);
        using var readyDuring = await gateway.Client().GetAsync("readyz", ct);
        using var duringOllama = await gateway.Client("ada").PostAsJsonAsync("api/chat", chat, ct);

        var connection = gateway.Services.GetRequiredService<IConnectionMultiplexer>();
        var restored = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.ConnectionRestored += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                restored.TrySetResult();
            }
        };
        await server.StartAgainAsync();
        await restored.Task.WaitAsync(ct);
        using var after = await gateway.Client("ada").PostAsJsonAsync("v1/chat/completions", chat, ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Equal("2", during.Headers.GetValues("Retry-After").Single());
        using (var error = JsonDocument.Parse(await during.Content.ReadAsStringAsync(ct)))
        {
            Assert.Equal("shared_state_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, duringOllama.StatusCode);
        using (var error = JsonDocument.Parse(await duringOllama.Content.ReadAsStringAsync(ct)))
        {
            Assert.Contains("Redis", error.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(HttpStatusCode.OK, readyBefore.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, readyDuring.StatusCode);
        using (var readiness = JsonDocument.Parse(await readyDuring.Content.ReadAsStringAsync(ct)))
        {
            Assert.Equal("not_ready", readiness.RootElement.GetProperty("status").GetString());
            Assert.False(readiness.RootElement.GetProperty("checks").GetProperty("redis").GetProperty("ok").GetBoolean());
        }

        using var readyAfter = await gateway.Client().GetAsync("readyz", ct);
        Assert.Equal(HttpStatusCode.OK, readyAfter.StatusCode);
    }

    private Dictionary<string, string?> Settings(string prefix) => new()
    {
        ["Anteroom:Redis:Configuration"] = redis.Server.Configuration,
        ["Anteroom:Redis:Prefix"] = prefix,
    };

    private static async Task<string> UserAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return body.RootElement.GetProperty("user").GetString()!;
    }
}
