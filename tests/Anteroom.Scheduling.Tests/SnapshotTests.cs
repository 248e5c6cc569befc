using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class SnapshotTests
{
    [Fact]
    public void Snapshot_CountsEveryEndingByOutcome()
    {
        var options = new SchedulerOptions { MaxDispatchAttempts = 1, MaxWait = TimeSpan.FromMinutes(1) };
        using var h = new SchedulerHarness(options, Backend("gpu", 4, "m"));
        LeaseOf(h.Admit("a")).Complete(0, 1);
        LeaseOf(h.Admit("b")).Complete(0, 1);
        LeaseOf(h.Admit("c")).Fail();
        LeaseOf(h.Admit("d")).TryRequeue();
        var cancelled = h.Admit("e");
        h.Scheduler.Cancel(cancelled);
        LeaseOf(cancelled).Dispose();
        h.AdmitMany(4, "f");
        var timesOut = h.Admit("g");
        h.Time.Advance(TimeSpan.FromMinutes(1));

        var snapshot = h.Scheduler.Snapshot();

        Assert.Equal(TicketOutcome.TimedOut, timesOut.Outcome);
        Assert.Equal(10, snapshot.Admitted);
        Assert.Equal(2, snapshot.Completed);
        Assert.Equal(2, snapshot.Failed);
        Assert.Equal(1, snapshot.Cancelled);
        Assert.Equal(1, snapshot.TimedOut);
        Assert.Equal(4, snapshot.Running);
        Assert.Equal(0, snapshot.Waiting);
    }

    [Fact]
    public void Snapshot_CountsRefusalsByReason()
    {
        var options = new SchedulerOptions { MaxWaitingPerUser = 1, MaxQueueLength = 2 };
        using var h = new SchedulerHarness(options, Backend("gpu", 1, "m"));
        h.Admit("alice", id: "dup");
        h.Admit("alice");
        h.TryAdmit("alice");
        h.TryAdmit("alice");
        h.TryAdmit("bob", id: "dup");
        h.TryAdmit("bob", model: "nope");
        h.Admit("bob");
        h.TryAdmit("carol");

        var snapshot = h.Scheduler.Snapshot();

        Assert.Equal(5, snapshot.Refused);
        Assert.Equal(4, snapshot.RefusedByReason.Count);
        Assert.Equal(2, snapshot.RefusedByReason[RefusalReason.UserQueueFull]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.DuplicateId]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.UnknownModel]);
        Assert.Equal(1, snapshot.RefusedByReason[RefusalReason.QueueFull]);
        Assert.Equal(3, snapshot.Admitted);
    }

    [Fact]
    public void Snapshot_ReportsWaitPercentilesOfDispatchedTickets()
    {
        using var h = new SchedulerHarness();
        var tickets = h.AdmitMany(3, "alice");

        h.Time.Advance(TimeSpan.FromSeconds(10));
        LeaseOf(tickets[0]).Complete(0, 256);
        h.Time.Advance(TimeSpan.FromSeconds(10));
        LeaseOf(tickets[1]).Complete(0, 256);

        var wait = h.Scheduler.Snapshot().Wait;
        Assert.Equal(new WaitPercentiles(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(20), 3), wait);
    }

    [Fact]
    public void Snapshot_BeforeAnyDispatch_ReportsZeroWaits()
    {
        using var h = new SchedulerHarness();

        Assert.Equal(new WaitPercentiles(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0), h.Scheduler.Snapshot().Wait);
    }

    [Fact]
    public void Snapshot_ReportsPeakRunningAfterTicketsEnd()
    {
        using var h = new SchedulerHarness(Backend("gpu", 3, "m"));
        var tickets = h.AdmitMany(3, "alice");
        foreach (var ticket in tickets)
        {
            LeaseOf(ticket).Complete(0, 1);
        }

        var snapshot = h.Scheduler.Snapshot();

        Assert.Equal(3, snapshot.PeakRunning);
        Assert.Equal(0, snapshot.Running);
    }

    [Fact]
    public void Snapshot_ReportsUtilisationAsBusySlotTimeOverUptime()
    {
        using var h = new SchedulerHarness(Backend("gpu", 2, "m"));
        var ticket = h.Admit("alice");
        h.Time.Advance(TimeSpan.FromSeconds(10));
        LeaseOf(ticket).Complete(0, 1);
        h.Time.Advance(TimeSpan.FromSeconds(10));

        var backend = Assert.Single(h.Scheduler.Snapshot().Backends);

        // One of two slots busy for 10 of 20 seconds.
        Assert.Equal(0.25, backend.Utilisation, precision: 9);
        Assert.Equal(1, backend.Completed);
    }

    [Fact]
    public void Snapshot_ReportsEachModelsQueueAndEachBackendsSlots()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 2, "llama", "qwen"));
        h.AdmitMany(4, "alice", "llama");
        h.Scheduler.SetBackendHealth("b", false);

        var snapshot = h.Scheduler.Snapshot();

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
