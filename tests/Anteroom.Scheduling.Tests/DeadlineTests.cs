using System.Runtime.CompilerServices;
using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class DeadlineTests
{
    // A quick prior (200 ms per request) so that waits of a few seconds are admitted.
    private static SchedulerOptions QuickOptions(TimeSpan? maxWait = null) => new()
    {
        MaxWait = maxWait ?? TimeSpan.FromMinutes(10),
        Prior = new ServicePrior { TimeToFirstToken = TimeSpan.FromMilliseconds(100), TokensPerSecond = 1000, OutputTokens = 100 },
    };

    [Fact]
    public void Timeout_AfterTheDeadline_EndsWaitingTicketTimedOut()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        h.Admit("a");
        var waiting = h.Admit("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(TicketOutcome.TimedOut, waiting.Outcome);
        var dispatch = Ended(waiting.Dispatched);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.TimedOut, dispatch.Outcome);
        Assert.Equal(1, h.Scheduler.Snapshot().TimedOut);
    }

    [Fact]
    public void Timeout_BeforeTheDeadline_KeepsTheTicketWaiting()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        h.Admit("a");
        var waiting = h.Admit("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(5) - TimeSpan.FromTicks(1));

        Assert.Equal(TicketState.Waiting, waiting.State);
    }

    [Fact]
    public void Timeout_WhenRequestedWaitExceedsSchedulersMaxWait_UsesSchedulersMaxWait()
    {
        using var h = new SchedulerHarness(QuickOptions(maxWait: TimeSpan.FromSeconds(30)), Backend("gpu", 1, "m"));
        h.Admit("a");
        var waiting = h.Admit("b", maxWait: TimeSpan.FromHours(1));

        Assert.Equal(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), waiting.Deadline);
        h.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(TicketOutcome.TimedOut, waiting.Outcome);
    }

    [Fact]
    public void Timeout_WithSeveralDeadlines_FiresEachAtItsOwnTime()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        h.Admit("a");
        var late = h.Admit("b", maxWait: TimeSpan.FromSeconds(20));
        var early = h.Admit("c", maxWait: TimeSpan.FromSeconds(5));
        var middle = h.Admit("d", maxWait: TimeSpan.FromSeconds(10));

        h.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal([TicketState.Waiting, TicketState.Ended, TicketState.Waiting], new[] { late.State, early.State, middle.State });

        h.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TicketOutcome.TimedOut, middle.Outcome);
        Assert.Equal(TicketState.Waiting, late.State);

        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(TicketOutcome.TimedOut, late.Outcome);
    }

    [Fact]
    public void Timeout_InOneLongAdvance_EndsEveryTicketPastItsDeadline()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        h.Admit("a");
        var waiting = Enumerable.Range(1, 5).Select(i => h.Admit($"u{i}", maxWait: TimeSpan.FromSeconds(i))).ToList();

        h.Time.Advance(TimeSpan.FromMinutes(1));

        Assert.All(waiting, t => Assert.Equal(TicketOutcome.TimedOut, t.Outcome));
        Assert.Equal(0, h.Scheduler.Snapshot().Waiting);
    }

    [Fact]
    public void Timeout_AfterEarliestDeadlinesTicketLeftTheQueue_StillFiresTheNext()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        var running = h.Admit("a");
        var first = h.Admit("b", maxWait: TimeSpan.FromSeconds(5));
        var cancelled = h.Admit("c", maxWait: TimeSpan.FromSeconds(6));
        var next = h.Admit("d", maxWait: TimeSpan.FromSeconds(8));

        LeaseOf(running).Complete(0, 100);
        h.Scheduler.Cancel(cancelled);
        h.Time.Advance(TimeSpan.FromSeconds(8));

        Assert.Equal(TicketState.Running, first.State);
        Assert.Equal(TicketOutcome.Cancelled, cancelled.Outcome);
        Assert.Equal(TicketOutcome.TimedOut, next.Outcome);
    }

    [Fact]
    public void Timeout_WhenTheTicketRunsBeforeItsDeadline_NeverEndsIt()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        var running = h.Admit("a");
        var waiting = h.Admit("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(1));
        LeaseOf(running).Complete(0, 100);
        h.Time.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal(TicketState.Running, waiting.State);
        Assert.Equal(0, h.Scheduler.Snapshot().TimedOut);
    }

    [Fact]
    public void Timeout_OfAWaitingTicket_FreesItsPlaceForTheTicketsBehind()
    {
        using var h = new SchedulerHarness(QuickOptions(), Backend("gpu", 1, "m"));
        h.Admit("a");
        h.Admit("b", maxWait: TimeSpan.FromSeconds(5));
        var behind = h.Admit("c");

        h.Time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(1, h.PositionOf(behind));
    }

    [Fact]
    public void Deadline_OfTicketThatLeftTheQueue_DoesNotKeepTheTicketReachable()
    {
        using var h = new SchedulerHarness();
        var cancelled = AdmitAndCancelWaitingTicket(h);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        // Its deadline entry is still queued (ten minutes away), but an ended ticket must be free to go.
        Assert.False(cancelled.IsAlive);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference AdmitAndCancelWaitingTicket(SchedulerHarness h)
    {
        h.Admit("a");
        var waiting = h.Admit("b");
        h.Scheduler.Cancel(waiting);
        return new WeakReference(waiting);
    }
}
