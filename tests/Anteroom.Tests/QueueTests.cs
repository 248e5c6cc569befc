using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Anteroom.Tests;

public sealed class QueueTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    [Fact]
    public async Task ThreeUsersOnOneSlot_SeePositionsCountDownInOrder_AndAllFinish()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        var simulator = gateway.Simulator("gpu");
        simulator.Hold();

        using var alice = await SseStream.ChatAsync(gateway.Client("alice"), new { message = "first" }, ct);
        var aliceStart = await alice.ReadUntilAsync(ct, "started");
        using var bob = await SseStream.ChatAsync(gateway.Client("bob"), new { message = "second" }, ct);
        var bobQueued = await bob.NextAsync(ct);
        using var carol = await SseStream.ChatAsync(gateway.Client("carol"), new { message = "third" }, ct);
        var carolQueued = await carol.NextAsync(ct);

        Assert.DoesNotContain(aliceStart, e => e.Type == "queued");
        Assert.Equal(("queued", 1), (bobQueued!.Type, bobQueued.Int("position")));
        Assert.Equal(("queued", 2), (carolQueued!.Type, carolQueued.Int("position")));
        Assert.Equal(2, carolQueued.Int("queue_length"));

        simulator.Release();
        var aliceRest = await alice.ReadToEndAsync(ct);
        var bobRest = await bob.ReadToEndAsync(ct);
        var carolRest = await carol.ReadToEndAsync(ct);

        Assert.Equal("done", aliceRest[^1].Type);
        Assert.Equal("done", bobRest[^1].Type);
        Assert.Equal("done", carolRest[^1].Type);
        var carolPositions = new[] { carolQueued }.Concat(carolRest).Where(e => e.Type == "queued").Select(e => e.Int("position")).ToList();
        Assert.Equal([2, 1], carolPositions);
        Assert.Contains(carolRest, e => e.Type == "token");
        // Event ids increase by one across the whole stream.
        var carolIds = new[] { carolQueued }.Concat(carolRest).Select(e => e.Id!.Value).ToList();
        Assert.Equal(Enumerable.Range(1, carolIds.Count).Select(i => (long)i), carolIds);
    }

    [Fact]
    public async Task Flood_FromOneUser_DelaysAnotherUsersSingleRequestByAtMostOneServiceTime()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?> { ["Anteroom:Queue:MaxWaitingPerUser"] = "100", ["Anteroom:Queue:MaxInFlightPerUser"] = "100" });
        var simulator = gateway.Simulator("gpu");
        simulator.Hold();
        var flooder = gateway.Client("flooder");
        var flood = new List<SseStream>();
        for (int i = 0; i < 50; i++)
        {
            var stream = await SseStream.ChatAsync(flooder, new { message = $"flood {i}" }, ct);
            await stream.NextAsync(ct);
            flood.Add(stream);
        }

        using var guest = await SseStream.ChatAsync(gateway.Client("guest"), new { message = "just one" }, ct);
        var guestQueued = await guest.NextAsync(ct);

        // Only the flood's running request is ahead: the guest runs as soon as one service time ends.
        Assert.Equal(1, guestQueued!.Int("position"));
        Assert.Equal(50, guestQueued.Int("queue_length"));

        simulator.Release();
        var guestEvents = await guest.ReadToEndAsync(ct);
        Assert.Equal("done", guestEvents[^1].Type);
        var guestStarted = (await gateway.Registry.GetAsync(guest.RequestId))!.Ticket.FirstDispatchedAt!.Value;
        int floodRunBeforeGuest = 0;
        foreach (var s in flood)
        {
            if ((await gateway.Registry.GetAsync(s.RequestId))!.Ticket.FirstDispatchedAt is { } started && started < guestStarted)
            {
                floodRunBeforeGuest++;
            }
        }

        Assert.Equal(1, floodRunBeforeGuest);

        foreach (var stream in flood)
        {
            stream.Dispose();
        }
    }

    [Fact]
    public async Task FullQueue_IsRefusedAtOnce_With429AndRetryAfterFromTheEstimate()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?>
            {
                ["Anteroom:Queue:MaxQueueLength"] = "1",
                ["Anteroom:Estimates:TimeToFirstTokenMs"] = "2000",
                ["Anteroom:Estimates:TokensPerSecond"] = "10",
                ["Anteroom:Estimates:OutputTokens"] = "50",
            });
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "runs" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(gateway.Client("b"), new { message = "waits" }, ct);
        await waiting.NextAsync(ct);

        using var refused = await gateway.Client("c").PostAsJsonAsync("chat/stream", new { message = "too many" }, ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        // The running request is estimated at 2 s + 50 tokens at 10/s = 7 s; the next slot frees within that.
        int retryAfter = (int)refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
        Assert.InRange(retryAfter, 1, 7);
        long retryAfterMs = long.Parse(refused.Headers.GetValues("retry-after-ms").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfterMs, (retryAfter - 1) * 1000L, retryAfter * 1000L);
        using var body = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(ct));
        Assert.Equal("queue_full", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        gateway.Simulator("gpu").Release();
    }

    [Fact]
    public async Task Waiting_PastTheDeadline_EndsWithTimeoutError_AndLeavesTheQueue()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "holds the slot" }, ct);
        await running.ReadUntilAsync(ct, "started");

        using var waiting = await SseStream.ChatAsync(gateway.Client("b"), new { message = "gives up", max_wait_ms = 200 }, ct);
        var events = await waiting.ReadToEndAsync(ct);

        Assert.Equal("queued", events[0].Type);
        Assert.Equal(("error", "timeout"), (events[^1].Type, events[^1].Text("code")));
        Assert.True(events[^1].Data.GetProperty("retry_after_ms").GetInt64() >= 1000, "a timeout says when to try again");
        var snapshot = (await gateway.Queue.GetSnapshotAsync());
        Assert.Equal((1, 0), (snapshot.TimedOut > 0 ? 1 : 0, snapshot.Waiting));
        gateway.Simulator("gpu").Release();
    }

    [Fact]
    public async Task BackendErrorBeforeFirstToken_IsRetriedOnASecondBackend()
    {
        var ct = Within30Seconds();
        var failing = TestGateway.FastSimulator();
        failing.FailBeforeFirstTokenRate = 1.0;
        await using var gateway = await TestGateway.StartAsync(
            new TestBackend("broken", failing), new TestBackend("healthy", TestGateway.FastSimulator()));

        using var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hello" }, ct);
        var events = await stream.ReadToEndAsync(ct);

        var backends = events.Where(e => e.Type == "started").Select(e => e.Text("backend")).ToList();
        Assert.Equal(["broken", "healthy"], backends);
        Assert.Equal("done", events[^1].Type);
        Assert.Equal(1, gateway.Simulator("healthy").Stats.Completed);
        Assert.Equal(1, (await gateway.Queue.GetSnapshotAsync()).Requeued);
    }

    [Fact]
    public async Task ErrorAfterFirstToken_EndsTheStreamWithAnErrorEvent_AndFreesTheSlot()
    {
        var ct = Within30Seconds();
        var breaking = TestGateway.FastSimulator(outputTokens: 40);
        breaking.FailMidStreamRate = 1.0;
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", breaking));

        using var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hello" }, ct);
        var events = await stream.ReadToEndAsync(ct);

        Assert.Contains(events, e => e.Type == "token");
        Assert.Equal(("error", "backend_error"), (events[^1].Type, events[^1].Text("code")));
        var snapshot = (await gateway.Queue.GetSnapshotAsync());
        Assert.Equal((1, 0), (snapshot.Failed, snapshot.Running));
    }

    [Fact]
    public async Task QueueStatus_ShowsTheWaitingListWithoutOtherUsersTextOrIds()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "secret running text" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(gateway.Client("b"), new { message = "secret waiting text" }, ct);
        await waiting.NextAsync(ct);

        string asOther = await gateway.Client("c").GetStringAsync("queue/status", ct);
        string asOwner = await gateway.Client("b").GetStringAsync("queue/status", ct);

        Assert.DoesNotContain("secret", asOther);
        Assert.DoesNotContain(waiting.RequestId, asOther);
        Assert.Contains(waiting.RequestId, asOwner);
        using var status = JsonDocument.Parse(asOther);
        Assert.Equal(1, status.RootElement.GetProperty("waiting").GetInt32());
        Assert.Equal(1, status.RootElement.GetProperty("running").GetInt32());
        Assert.Equal(1, status.RootElement.GetProperty("queue")[0].GetProperty("position").GetInt32());
        Assert.Equal("gpu", status.RootElement.GetProperty("backends")[0].GetProperty("name").GetString());
        gateway.Simulator("gpu").Release();
    }
}
