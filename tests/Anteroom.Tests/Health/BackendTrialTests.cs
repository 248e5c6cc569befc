using System.Net;
using System.Net.Http.Json;
using Anteroom.Simulator;

namespace Anteroom.Tests.Health;

/// <summary>
/// An unhealthy backend comes back through the trial request that follows its cool-down, not through the next
/// probe: every test sets the probe an hour away, so only requests can bring it back.
/// </summary>
public sealed class BackendTrialTests
{
    private const string Model = "llama3.1:8b";

    private static CancellationToken Within60Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;

    /// <summary>
    /// The cool-down has to pass in real time (the gateway runs on the system clock, and its timers with it), so it
    /// is short here; a request may be tried that many times because every trial before the restart fails.
    /// </summary>
    private static Dictionary<string, string?> Settings(double cooldownSeconds = 0.2) => new()
    {
        ["Anteroom:Health:ProbeSeconds"] = "3600",
        ["Anteroom:Health:CooldownSeconds"] = cooldownSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Anteroom:Queue:MaxDispatchAttempts"] = "1000",
        ["Anteroom:Queue:MaxWaitSeconds"] = "30",
    };

    private static Task<HttpResponseMessage> AskAsync(HttpClient client, string content, CancellationToken ct) =>
        client.PostAsJsonAsync("v1/chat/completions", new { model = Model, messages = new[] { new { role = "user", content } } }, ct);

    /// <summary>A loopback port nothing listens on (for now).</summary>
    private static int FreePort()
    {
        using var closed = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        int port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        return port;
    }

    /// <summary>
    /// A gateway whose backend is down from the start (nothing listens on its port): the first probe opens its
    /// circuit before any request comes, and the test waits for that, so no probe races its requests.
    /// </summary>
    private static async Task<TestGateway> StartWithTheBackendDownAsync(int port, Dictionary<string, string?> settings, CancellationToken ct)
    {
        settings["Anteroom:Backends:0:Url"] = $"http://127.0.0.1:{port}/";
        var gateway = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);
        await gateway.WaitForSchedulerAsync(s => !s.Backends.Single().Healthy, ct);
        return gateway;
    }

    /// <summary>Reads the request's events until it has been dispatched the given number of times.</summary>
    private static async Task ReadUntilAttemptAsync(SseStream stream, int attempt, CancellationToken ct)
    {
        while (true)
        {
            var events = await stream.ReadUntilAsync(ct, "started");
            if (events[^1].Int("attempt") >= attempt)
            {
                return;
            }
        }
    }

    [Fact]
    public async Task ARetriedRequestOnTrial_ThatSucceeds_BringsTheBackendBack_ForEveryoneElse()
    {
        var ct = Within60Seconds();
        int port = FreePort();
        await using var gateway = await StartWithTheBackendDownAsync(port, Settings(), ct);
        await WaitUntilAdmittingAsync(gateway, ct);
        // Alice's request takes the first trial and fails; from then on it waits at the head of the queue, already
        // counted against this backend, and is the request every later trial lets through.
        using var alice = await SseStream.ChatAsync(gateway.Client("alice"), new { message = "meets the backend down" }, ct);
        await ReadUntilAttemptAsync(alice, 2, ct);

        await using var restarted = await SimulatedModelServer.StartAsync(TestGateway.FastSimulator(), $"http://127.0.0.1:{port}");
        var events = await alice.ReadToEndAsync(ct);
        using var bob = await AskAsync(gateway.Client("bob"), "after the trial", ct);

        Assert.Equal("done", events[^1].Type);
        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.True((await gateway.Queue.GetSnapshotAsync(ct)).Backends.Single(b => b.Name == "gpu").Healthy);
    }

    [Fact]
    public async Task ATrialStoppedBeforeTheBackendAnswers_LetsTheNextRequestTry()
    {
        var ct = Within60Seconds();
        int port = FreePort();
        await using var gateway = await StartWithTheBackendDownAsync(port, Settings(), ct);
        await WaitUntilAdmittingAsync(gateway, ct);
        using var alice = await SseStream.ChatAsync(gateway.Client("alice"), new { message = "gives up" }, ct);
        await ReadUntilAttemptAsync(alice, 2, ct);
        // Slow to its first token, so alice's next trial is still waiting for an answer when she gives up.
        var slow = TestGateway.FastSimulator();
        slow.TtftMs = 1500;
        await using var restarted = await SimulatedModelServer.StartAsync(slow, $"http://127.0.0.1:{port}");
        await restarted.WaitUntilAsync(s => s.Active == 1, ct);

        using var deleted = await gateway.Client("alice").DeleteAsync($"queue/requests/{alice.RequestId}", ct);
        var events = await alice.ReadToEndAsync(ct);
        await WaitUntilAdmittingAsync(gateway, ct);
        using var bob = await AskAsync(gateway.Client("bob"), "the next trial", ct);

        Assert.Equal("cancelled", events[^1].Type);
        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.True((await gateway.Queue.GetSnapshotAsync(ct)).Backends.Single(b => b.Name == "gpu").Healthy);
    }

    [Fact]
    public async Task OneUsersRequestsThatTheBackendFails_DoNotTurnOtherUsersAway()
    {
        var ct = Within60Seconds();
        var simulator = TestGateway.FastSimulator();
        // The first five generations answer 500, the next five succeed: alice's five requests get the failures.
        simulator.FailBeforeFirstTokenRate = 0.5;
        simulator.FaultCycle = 10;
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", simulator)],
            new Dictionary<string, string?>
            {
                ["Anteroom:Health:ProbeSeconds"] = "3600",
                ["Anteroom:Health:FailuresBeforeUnhealthy"] = "5",
                ["Anteroom:Health:MinimumRequests"] = "5",
                ["Anteroom:Health:CooldownSeconds"] = "3600",
                // Each request one attempt, so each of alice's requests meets exactly one failure.
                ["Anteroom:Queue:MaxDispatchAttempts"] = "1",
            });
        var alice = gateway.Client("alice");

        for (int i = 0; i < 5; i++)
        {
            using var failed = await AskAsync(alice, $"fails {i}", ct);
            Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        }

        using var bob = await AskAsync(gateway.Client("bob"), "served", ct);

        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.True((await gateway.Queue.GetSnapshotAsync(ct)).Backends.Single(b => b.Name == "gpu").Healthy);
    }

    [Fact]
    public async Task NoHealthyBackend_AsksCallersToRetryWhenTheTrialIsDue_NotAtTheNextProbe()
    {
        var ct = Within60Seconds();
        await using var gateway = await StartWithTheBackendDownAsync(FreePort(), Settings(cooldownSeconds: 30), ct);

        using var chat = await AskAsync(gateway.Client("bob"), "refused", ct);
        using var load = await gateway.Client("bob").PostAsJsonAsync("api/generate", new { model = Model }, ct);

        Assert.Contains("no_healthy_backend", await chat.Content.ReadAsStringAsync(ct));
        Assert.Contains("No healthy backend", await load.Content.ReadAsStringAsync(ct));
        foreach (var refused in new[] { chat, load })
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            // The trial is due 30 s after the failed probe; the next probe is an hour away.
            Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Waits, on the scheduler's change signal, until it would admit a request for the model.</summary>
    private static async Task WaitUntilAdmittingAsync(TestGateway gateway, CancellationToken ct)
    {
        while (true)
        {
            long version = gateway.Queue.ChangeVersion;
            if (await gateway.Queue.EstimateWaitAsync(Model, ct) is not null)
            {
                return;
            }

            await gateway.Queue.WaitForChangeAsync(version, ct);
        }
    }
}
