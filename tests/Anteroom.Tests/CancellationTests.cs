using System.Net;

namespace Anteroom.Tests;

public sealed class CancellationTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    [Fact]
    public async Task ClientLeaving_WhileWaiting_RemovesItsTicketFromTheQueue()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "runs" }, ct);
        await running.ReadUntilAsync(ct, "started");
        var waiting = await SseStream.ChatAsync(gateway.Client("b"), new { message = "leaves" }, ct);
        await waiting.NextAsync(ct);

        waiting.Dispose();
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1, ct);

        var snapshot = (await gateway.Queue.GetSnapshotAsync());
        Assert.Equal((0, 1), (snapshot.Waiting, snapshot.Running));
        Assert.Equal(0, gateway.Simulator("gpu").Stats.Queued);
        gateway.Simulator("gpu").Release();
    }

    /// <summary>
    /// A client can leave after its request is admitted but before its answer starts (under load, before the
    /// handler reaches its first await). Nothing but the hold taken at admission is there to notice, so releasing
    /// that hold alone must take the ticket out of the queue. Acting as the endpoint pins that moment exactly.
    /// </summary>
    [Fact]
    public async Task ConnectionLeaving_BeforeItsAnswerStarts_StillTakesItsTicketOutOfTheQueue()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "runs" }, ct);
        await running.ReadUntilAsync(ct, "started");
        var caller = new Identity.Caller("user:b", "b", "default", new Configuration.TierOptions(), null, false, false);
        var reply = await gateway.Reception.AdmitAsync(new Requests.Arrival(
            caller, new Backends.GenerationRequest { Model = "llama3.1:8b", Messages = [new("user", "leaves at once")] }));
        var request = Assert.IsType<Requests.LiveRequest>(reply.Request);
        Assert.Equal(1, (await gateway.Queue.GetSnapshotAsync()).Waiting);

        reply.Hold!.Dispose();
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1 && s.Waiting == 0, ct);

        Assert.Equal("client_disconnected", request.StopReason);
        Assert.Equal(1, (await gateway.Queue.GetSnapshotAsync()).Running);
        gateway.Simulator("gpu").Release();
    }

    [Fact]
    public async Task ClientLeaving_WhileRunning_StopsTheBackendGeneration()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.SlowSimulator()));
        var simulator = gateway.Simulator("gpu");
        var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "a long answer please" }, ct);
        await stream.ReadUntilAsync(ct, "token");

        stream.Dispose();
        await simulator.WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1 && s.Running == 0, ct);

        Assert.Equal(0, simulator.Stats.Completed);
        Assert.Equal(0, simulator.Stats.TokensAfterDisconnect);
    }

    [Fact]
    public async Task Delete_WhileRunning_EndsWithCancelledEvent_AndStopsTheBackend()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.SlowSimulator()));
        var client = gateway.Client("a");
        using var stream = await SseStream.ChatAsync(client, new { message = "stop me" }, ct);
        await stream.ReadUntilAsync(ct, "token");

        using var deleted = await client.DeleteAsync($"queue/requests/{stream.RequestId}", ct);
        var events = await stream.ReadToEndAsync(ct);

        Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        Assert.Equal(("cancelled", "cancelled_by_user"), (events[^1].Type, events[^1].Text("reason")));
        await gateway.Simulator("gpu").WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
    }

    [Fact]
    public async Task Delete_WhileWaiting_EndsItAndTheNextRequestStillRuns()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "runs" }, ct);
        await running.ReadUntilAsync(ct, "started");
        var b = gateway.Client("b");
        using var waiting = await SseStream.ChatAsync(b, new { message = "cancel me" }, ct);
        await waiting.NextAsync(ct);
        using var third = await SseStream.ChatAsync(gateway.Client("c"), new { message = "after" }, ct);
        var thirdQueued = await third.NextAsync(ct);

        using var deleted = await b.DeleteAsync($"queue/requests/{waiting.RequestId}", ct);
        var waitingEvents = await waiting.ReadToEndAsync(ct);
        var thirdMoved = await third.NextAsync(ct);

        Assert.Equal("cancelled", waitingEvents[^1].Type);
        Assert.Equal((2, 1), (thirdQueued!.Int("position"), thirdMoved!.Int("position")));
        gateway.Simulator("gpu").Release();
        Assert.Equal("done", (await third.ReadToEndAsync(ct))[^1].Type);
    }

    [Fact]
    public async Task AnotherUser_CannotSeeOrCancelARequest_EvenKnowingItsId()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        using var stream = await SseStream.ChatAsync(gateway.Client("owner"), new { message = "mine" }, ct);
        await stream.NextAsync(ct);
        var intruder = gateway.Client("intruder");

        using var status = await intruder.GetAsync($"queue/requests/{stream.RequestId}", ct);
        using var cancel = await intruder.DeleteAsync($"queue/requests/{stream.RequestId}", ct);
        using var replay = await intruder.GetAsync($"queue/requests/{stream.RequestId}/events", ct);

        Assert.Equal([HttpStatusCode.NotFound, HttpStatusCode.NotFound, HttpStatusCode.NotFound], [status.StatusCode, cancel.StatusCode, replay.StatusCode]);
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Cancelled);
        gateway.Simulator("gpu").Release();
    }
}
