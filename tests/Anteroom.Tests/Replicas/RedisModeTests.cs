using System.Net;
using System.Text.Json;
using Anteroom.Identity;
using Anteroom.Tests.Shared;
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
