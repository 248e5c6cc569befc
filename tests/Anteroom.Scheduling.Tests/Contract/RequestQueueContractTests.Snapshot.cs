
namespace Anteroom.Scheduling.Tests.Contract;

// snapshots
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task Snapshot_CountsEveryEndingByOutcome()
    {
        var options = new SchedulerOptions { MaxDispatchAttempts = 1, MaxWait = TimeSpan.FromMinutes(1) };
        await using var h = Harness(options, Backend("gpu", 4, "m"));
        (await h.LeaseOfAsync(await h.AdmitAsync("a"))).Complete(0, 1);
        (await h.LeaseOfAsync(await h.AdmitAsync("b"))).Complete(0, 1);
        (await h.LeaseOfAsync(await h.AdmitAsync("c"))).Fail();
        (await h.LeaseOfAsync(await h.AdmitAsync("d"))).TryRequeue();
        var cancelled = await h.AdmitAsync("e");
        await h.Queue.CancelAsync(cancelled.Id);
        (await h.LeaseOfAsync(cancelled)).Dispose();
        await h.AdmitManyAsync(4, "f");
        var timesOut = await h.AdmitAsync("g");
        h.Time.Advance(TimeSpan.FromMinutes(1));

        var snapshot = (await h.SnapshotAsync());

        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(timesOut)));
        Assert.Equal(10, snapshot.Admitted);
        Assert.Equal(2, snapshot.Completed);
        Assert.Equal(2, snapshot.Failed);
        Assert.Equal(1, snapshot.Cancelled);
        Assert.Equal(1, snapshot.TimedOut);
        Assert.Equal(4, snapshot.Running);
        Assert.Equal(0, snapshot.Waiting);
    }

    [Fact]
    public async Task Snapshot_CountsRefusalsByReason()
    {
        var options = new SchedulerOptions { MaxWaitingPerUser = 1, MaxQueueLength = 2 };
        await using var h = Harness(options, Backend("gpu", 1, "m"));
        await h.AdmitAsync("alice", id: "dup");
        await h.AdmitAsync("alice");
        await h.TryAdmitAsync("alice");
        await h.TryAdmitAsync("alice");
        await h.TryAdmitAsync("bob", id: "dup");
        await h.TryAdmitAsync("bob", model: "nope");
        await h.AdmitAsync("bob");
        await h.TryAdmitAsync("carol");

        var snapshot = (await h.SnapshotAsync());

        Assert.Equal(5, snapshot.Refused);
        Assert.Equal(4, snapshot.RefusedByReason.Count);
        Assert.Equal(2, snapshot.RefusedByReason[RefusalReason.UserQueueFull]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.DuplicateId]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.UnknownModel]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.QueueFull]);
        Assert.Equal(3, snapshot.Admitted);
    }

    [Fact]
    public async Task Snapshot_ReportsWaitPercentilesOfDispatchedTickets()
    {
        await using var h = Harness();
        var tickets = await h.AdmitManyAsync(3, "alice");

        h.Time.Advance(TimeSpan.FromSeconds(10));
        (await h.LeaseOfAsync(tickets[0])).Complete(0, 256);
        h.Time.Advance(TimeSpan.FromSeconds(10));
        (await h.LeaseOfAsync(tickets[1])).Complete(0, 256);

        var wait = (await h.SnapshotAsync()).Wait;
        Assert.Equal(new WaitPercentiles(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(20), 3), wait);
    }

    [Fact]
    public async Task Snapshot_BeforeAnyDispatch_ReportsZeroWaits()
    {
        await using var h = Harness();

        Assert.Equal(new WaitPercentiles(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0), (await h.SnapshotAsync()).Wait);
    }

    [Fact]
    public async Task Snapshot_ReportsPeakRunningAfterTicketsEnd()
    {
        await using var h = Harness(Backend("gpu", 3, "m"));
        var tickets = await h.AdmitManyAsync(3, "alice");
        foreach (var ticket in tickets)
        {
            (await h.LeaseOfAsync(ticket)).Complete(0, 1);
        }

        var snapshot = (await h.SnapshotAsync());

        Assert.Equal(3, snapshot.PeakRunning);
        Assert.Equal(0, snapshot.Running);
    }

    [Fact]
    public async Task Snapshot_ReportsUtilisationAsBusySlotTimeOverUptime()
    {
        await using var h = Harness(Backend("gpu", 2, "m"));
        var ticket = await h.AdmitAsync("alice");
        h.Time.Advance(TimeSpan.FromSeconds(10));
        (await h.LeaseOfAsync(ticket)).Complete(0, 1);
        h.Time.Advance(TimeSpan.FromSeconds(10));

        var backend = Assert.Single((await h.SnapshotAsync()).Backends);

        // One of two slots busy for 10 of 20 seconds.
        Assert.Equal(0.25, backend.Utilisation, precision: 9);
        Assert.Equal(1, backend.Completed);
    }

    [Fact]
    public async Task Snapshot_ReportsEachModelsQueueAndEachBackendsSlots()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 2, "llama", "qwen"));
        await h.AdmitManyAsync(4, "alice", "llama");
        await h.Queue.SetBackendHealthAsync("b", false);

        var snapshot = (await h.SnapshotAsync());

        var llama = snapshot.Models.Single(m => m.Model == "llama");
        Assert.Equal((1, 3, 1), (llama.Waiting, llama.Running, llama.Slots));
        var qwen = snapshot.Models.Single(m => m.Model == "qwen");
        Assert.Equal((0, 0, 0), (qwen.Waiting, qwen.Running, qwen.Slots));
        var b = snapshot.Backends.Single(x => x.Name == "b");
        Assert.Equal((2, 2, false), (b.Slots, b.Running, b.Healthy));
        Assert.Equal(["llama", "qwen"], b.Models);
        Assert.Equal(h.Time.GetUtcNow(), snapshot.TakenAt);
    }
}
