using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class CancellationTests
{
    [Fact]
    public void Cancel_WhenWaiting_RemovesTicketFromQueue()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var b = h.Admit("b");
        var c = h.Admit("c");

        Assert.True(h.Scheduler.Cancel(b));

        Assert.Null(h.Scheduler.GetPlace(b));
        Assert.Equal(new WaitingPlace(1, 1, h.Scheduler.GetPlace(c)!.Value.EstimatedWait), h.Scheduler.GetPlace(c));
        Assert.Null(h.Scheduler.Find(b.Id));
    }

    [Fact]
    public void Cancel_WhenWaiting_EndsTicketCancelledAndEndsItsWaitWithoutLease()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var b = h.Admit("b");

        h.Scheduler.Cancel(b);

        Assert.Equal(TicketState.Ended, b.State);
        Assert.Equal(TicketOutcome.Cancelled, b.Outcome);
        Assert.Equal(h.Time.GetUtcNow(), b.EndedAt);
        var dispatch = Ended(b.Dispatched);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
    }

    [Fact]
    public void Cancel_WhenWaiting_NeverGivesTheTicketASlotLater()
    {
        using var h = new SchedulerHarness();
        var a = h.Admit("a");
        var b = h.Admit("b");
        var c = h.Admit("c");
        h.Scheduler.Cancel(b);

        LeaseOf(a).Complete(0, 256);

        Assert.Equal(TicketState.Running, c.State);
        Assert.Null(b.FirstDispatchedAt);
    }

    [Fact]
    public void Cancel_ById_CancelsTheLiveTicket()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var b = h.Admit("b", id: "req-b");

        Assert.True(h.Scheduler.Cancel("req-b"));
        Assert.Equal(TicketOutcome.Cancelled, b.Outcome);
        Assert.False(h.Scheduler.Cancel("req-b"));
        Assert.False(h.Scheduler.Cancel("no-such-id"));
    }

    [Fact]
    public void Cancel_WhenEnded_ReturnsFalseAndKeepsTheOutcome()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("a");
        LeaseOf(ticket).Complete(0, 1);

        Assert.False(h.Scheduler.Cancel(ticket));
        Assert.Equal(TicketOutcome.Completed, ticket.Outcome);
    }

    [Fact]
    public void Cancel_WhenRunning_FiresAbortedAndKeepsTheSlotUntilTheLeaseEnds()
    {
        using var h = new SchedulerHarness();
        var running = h.Admit("a");
        var waiting = h.Admit("b");

        Assert.True(h.Scheduler.Cancel(running));

        Assert.True(running.Aborted.IsCancellationRequested);
        Assert.Equal(TicketState.Running, running.State);
        Assert.Equal(TicketState.Waiting, waiting.State);
    }

    [Fact]
    public void Cancel_WhenRunning_FiresTheTokenTheHolderTookBefore()
    {
        // The abort source is made on first use: a token taken before the cancel must be the one it fires.
        using var h = new SchedulerHarness();
        var running = h.Admit("a");
        var aborted = running.Aborted;

        Assert.False(aborted.IsCancellationRequested);
        Assert.True(h.Scheduler.Cancel(running));

        Assert.True(aborted.IsCancellationRequested);
        Assert.Equal(aborted, running.Aborted);
    }

    [Fact]
    public void Dispose_OfAbortedLease_EndsTicketCancelledAndRunsTheNext()
    {
        using var h = new SchedulerHarness();
        var running = h.Admit("a");
        var waiting = h.Admit("b");
        h.Scheduler.Cancel(running);

        LeaseOf(running).Dispose();

        Assert.Equal(TicketOutcome.Cancelled, running.Outcome);
        Assert.Equal(TicketState.Running, waiting.State);
        Assert.Equal(1, h.Scheduler.Snapshot().Cancelled);
    }

    [Fact]
    public void Dispose_OfLeaseNotEnded_CountsTheTicketCancelled()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("a");

        using (LeaseOf(ticket))
        {
        }

        Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
        Assert.Empty(h.Scheduler.GetRunning());
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenTokenIsCancelled_CancelsTheWaitingTicket()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var ticket = h.Admit("b");
        using var left = new CancellationTokenSource();
        var wait = h.Scheduler.WaitForSlotAsync(ticket, left.Token);

        await left.CancelAsync();
        var dispatch = await wait;

        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
        Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
        Assert.Equal(0, h.Scheduler.Snapshot().Waiting);
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenSlotFrees_ReturnsTheLease()
    {
        using var h = new SchedulerHarness();
        var first = h.Admit("a");
        var ticket = h.Admit("b");
        using var left = new CancellationTokenSource();
        var wait = h.Scheduler.WaitForSlotAsync(ticket, left.Token);

        LeaseOf(first).Complete(0, 256);
        var dispatch = await wait;

        Assert.NotNull(dispatch.Lease);
        Assert.Same(ticket, dispatch.Lease.Ticket);
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenTokenIsCancelledAfterTheSlotCame_LeavesTheTicketRunning()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("a");
        using var left = new CancellationTokenSource();

        var dispatch = await h.Scheduler.WaitForSlotAsync(ticket, left.Token);
        await left.CancelAsync();

        Assert.NotNull(dispatch.Lease);
        Assert.False(ticket.Aborted.IsCancellationRequested);
        Assert.Equal(TicketState.Running, ticket.State);
    }

    [Fact]
    public async Task WaitForSlotAsync_WithTokenAlreadyCancelled_CancelsTheTicketAtOnce()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var ticket = h.Admit("b");

        var dispatch = await h.Scheduler.WaitForSlotAsync(ticket, new CancellationToken(canceled: true));

        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
    }

    [Fact]
    public void Cancel_OfOwnersNewestWaitingTicket_GivesBackWhatItBooked()
    {
        using var h = new SchedulerHarness();
        h.AdmitMany(2, "alice");
        var regret = h.Admit("alice");
        h.Scheduler.Cancel(regret);

        // Alice's next ticket takes the cancelled one's share, not the share after it.
        var next = h.Admit("alice");
        var bob = h.AdmitMany(4, "bob");

        Assert.Equal(4, h.PositionOf(next));
        Assert.Equal(5, h.PositionOf(bob[2]));
    }
}
