using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class RequeueTests
{
    [Fact]
    public void TryRequeue_WhenAnotherBackendIsFree_RunsTheTicketThere()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = h.Admit("alice");
        var firstLease = LeaseOf(ticket);
        Assert.Equal("a", firstLease.Backend);

        Assert.True(firstLease.TryRequeue());

        var secondLease = LeaseOf(ticket);
        Assert.NotSame(firstLease, secondLease);
        Assert.Equal("b", secondLease.Backend);
        Assert.Equal(2, ticket.Attempts);
        Assert.Equal(1, h.Scheduler.Snapshot().Requeued);
    }

    [Fact]
    public void TryRequeue_WhenNoOtherBackendIsFree_RunsTheTicketAgainBeforeLaterArrivals()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = h.Admit("alice");
        h.Admit("bob");
        var later = h.Admit("carol");

        Assert.True(LeaseOf(ticket).TryRequeue());

        Assert.Equal("a", LeaseOf(ticket).Backend);
        Assert.Equal(TicketState.Waiting, later.State);
    }

    [Fact]
    public void TryRequeue_WhenNoSlotIsFree_PutsTheTicketAtTheHeadOfTheQueue()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"));
        var ticket = h.Admit("alice");
        var others = new[] { h.Admit("bob"), h.Admit("carol"), h.Admit("alice") };
        h.Scheduler.SetBackendHealth("a", false);

        Assert.True(LeaseOf(ticket).TryRequeue());

        Assert.Equal(TicketState.Waiting, ticket.State);
        Assert.False(ticket.Dispatched.IsCompleted);
        Assert.Equal(1, h.PositionOf(ticket));
        Assert.Equal([2, 3, 4], others.Select(h.PositionOf));
    }

    [Fact]
    public void TryRequeue_WhenBackendRecovers_DispatchesTheTicketAgain()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"));
        var ticket = h.Admit("alice");
        h.Admit("bob");
        h.Scheduler.SetBackendHealth("a", false);
        LeaseOf(ticket).TryRequeue();

        h.Scheduler.SetBackendHealth("a", true);

        Assert.Equal("a", LeaseOf(ticket).Backend);
        Assert.Equal(2, ticket.Attempts);
    }

    [Fact]
    public void TryRequeue_WhenAttemptsAreExhausted_FailsTheTicket()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxDispatchAttempts = 2 }, Backend("a", 1, "m"));
        var ticket = h.Admit("alice");
        Assert.True(LeaseOf(ticket).TryRequeue());

        Assert.False(LeaseOf(ticket).TryRequeue());

        Assert.Equal(TicketOutcome.Failed, ticket.Outcome);
        Assert.Equal(1, h.Scheduler.Snapshot().Failed);
        Assert.Empty(h.Scheduler.GetRunning());
    }

    [Fact]
    public void TryRequeue_WhenTicketWasCancelledWhileRunning_EndsItCancelled()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = h.Admit("alice");
        h.Scheduler.Cancel(ticket);

        Assert.False(LeaseOf(ticket).TryRequeue());

        Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
        Assert.Empty(h.Scheduler.GetRunning());
    }

    [Fact]
    public void TryRequeue_AfterTheLeaseEnded_DoesNothing()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("alice");
        var lease = LeaseOf(ticket);
        lease.Complete(0, 1);

        Assert.False(lease.TryRequeue());
        Assert.Equal(TicketOutcome.Completed, ticket.Outcome);
    }

    [Fact]
    public void TryRequeue_GivesTheTicketAFreshDeadline()
    {
        var options = new SchedulerOptions { MaxWait = TimeSpan.FromMinutes(1) };
        using var h = new SchedulerHarness(options, Backend("a", 1, "m"));
        var ticket = h.Admit("alice");
        h.Scheduler.SetBackendHealth("a", false);
        h.Time.Advance(TimeSpan.FromSeconds(50));

        LeaseOf(ticket).TryRequeue();
        h.Time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(TicketState.Waiting, ticket.State);

        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TicketOutcome.TimedOut, ticket.Outcome);
    }
}
