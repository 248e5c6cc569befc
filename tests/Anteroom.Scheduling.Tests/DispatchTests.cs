using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class DispatchTests
{
    [Fact]
    public void Admit_WhenSlotIsFree_DispatchesAtOnce()
    {
        using var h = new SchedulerHarness();

        var ticket = h.Admit("alice");

        Assert.Equal(TicketState.Running, ticket.State);
        var lease = LeaseOf(ticket);
        Assert.Equal("gpu", lease.Backend);
        Assert.Equal("gpu", ticket.Backend);
        Assert.Equal(1, ticket.Attempts);
        Assert.Equal(h.Time.GetUtcNow(), ticket.FirstDispatchedAt);
    }

    [Fact]
    public void Admit_WhenAllSlotsAreBusy_Waits()
    {
        using var h = new SchedulerHarness();
        h.Admit("alice");

        var second = h.Admit("bob");

        Assert.Equal(TicketState.Waiting, second.State);
        Assert.False(second.Dispatched.IsCompleted);
        Assert.Null(second.FirstDispatchedAt);
    }

    [Fact]
    public void Dispatch_WhenSlotFrees_RunsNextWaitingTicket()
    {
        using var h = new SchedulerHarness();
        var first = h.Admit("alice");
        var second = h.Admit("bob");

        LeaseOf(first).Complete(10, 20);

        Assert.Equal(TicketState.Running, second.State);
        Assert.Same(second, LeaseOf(second).Ticket);
        Assert.Equal(TicketOutcome.Completed, first.Outcome);
    }

    [Fact]
    public void Dispatch_WithinOneUser_RunsTicketsInArrivalOrder()
    {
        using var h = new SchedulerHarness();
        var tickets = h.AdmitMany(6, "alice");

        Assert.Equal(tickets, h.RunInOrder());
    }

    [Fact]
    public void Dispatch_WithSeveralSlots_FillsEverySlot()
    {
        using var h = new SchedulerHarness(Backend("gpu", 3, "m"));

        var tickets = h.AdmitMany(4, "alice");

        Assert.Equal(3, tickets.Count(t => t.State == TicketState.Running));
        Assert.Equal(TicketState.Waiting, tickets[3].State);
    }

    [Fact]
    public void Dispatch_WhenOneModelIsBusy_RunsAnotherModelOnItsFreeBackend()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        h.Admit("alice", "llama");
        var blocked = h.Admit("alice", "llama");

        var other = h.Admit("bob", "qwen");

        Assert.Equal(TicketState.Waiting, blocked.State);
        Assert.Equal(TicketState.Running, other.State);
        Assert.Equal("b", LeaseOf(other).Backend);
    }

    [Fact]
    public void Dispatch_WhenSlotFreesOnTwoModelBackend_RunsTheOtherModelsWaitingTicket()
    {
        using var h = new SchedulerHarness(Backend("llama-only", 1, "llama"), Backend("shared", 1, "llama", "qwen"));
        var llama1 = h.Admit("alice", "llama");
        var llama2 = h.Admit("alice", "llama");
        var qwen = h.Admit("bob", "qwen");
        Assert.Equal("llama-only", LeaseOf(llama1).Backend);
        Assert.Equal("shared", LeaseOf(llama2).Backend);
        Assert.Equal(TicketState.Waiting, qwen.State);

        LeaseOf(llama2).Complete(0, 256);

        Assert.Equal(TicketState.Running, qwen.State);
        Assert.Equal("shared", LeaseOf(qwen).Backend);
    }

    [Fact]
    public void Dispatch_OnTwoModelBackend_UsesEverySlotForWhicheverModelsWait()
    {
        using var h = new SchedulerHarness(Backend("shared", 3, "llama", "qwen"));

        var llama = h.Admit("alice", "llama");
        var qwen1 = h.Admit("bob", "qwen");
        var qwen2 = h.Admit("bob", "qwen");

        Assert.All([llama, qwen1, qwen2], t => Assert.Equal(TicketState.Running, t.State));
    }

    [Fact]
    public void Dispatch_WhenSlotFreesOnSingleModelBackend_NeverRunsAnotherModelThere()
    {
        using var h = new SchedulerHarness(Backend("llama-only", 1, "llama"), Backend("qwen-only", 1, "qwen"));
        var llama = h.Admit("alice", "llama");
        h.Admit("bob", "qwen");
        var qwenWaiting = h.Admit("bob", "qwen");

        LeaseOf(llama).Complete(0, 256);

        Assert.Equal(TicketState.Waiting, qwenWaiting.State);
        Assert.DoesNotContain(h.Scheduler.GetRunning(), l => l.Backend == "llama-only");
    }

    [Fact]
    public void Dispatch_WithTwoFreeBackends_PrefersTheLessLoadedOne()
    {
        using var h = new SchedulerHarness(Backend("big", 4, "m"), Backend("small", 1, "m"));
        h.Admit("alice");

        var second = h.Admit("bob");

        Assert.Equal("small", LeaseOf(second).Backend);
    }

    [Fact]
    public void SetBackendHealth_WhenUnhealthy_GivesItNoNewTickets()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        h.Scheduler.SetBackendHealth("a", false);

        var first = h.Admit("alice");
        var second = h.Admit("bob");

        Assert.Equal("b", LeaseOf(first).Backend);
        Assert.Equal(TicketState.Waiting, second.State);
        Assert.False(h.Scheduler.IsBackendHealthy("a"));
    }

    [Fact]
    public void AllowBackendTrial_AdmitsAndDispatchesExactlyOneArrival_AndRefusesTheRestUntilItsHealthIsKnown()
    {
        using var h = new SchedulerHarness(Backend("a", 4, "m"));
        h.Scheduler.SetBackendHealth("a", false);

        h.Scheduler.AllowBackendTrial("a");
        var trial = h.Admit("alice");
        var burst = Enumerable.Range(0, 5).Select(i => h.TryAdmit($"user{i}")).ToList();

        Assert.Equal("a", LeaseOf(trial).Backend);
        Assert.All(burst, admission => Assert.Equal(RefusalReason.NoHealthyBackend, admission.Refusal!.Reason));

        h.Scheduler.SetBackendHealth("a", true);
        Assert.True(h.TryAdmit("bob").IsAdmitted);
    }

    [Fact]
    public void AllowBackendTrial_GivesTheSlotToTheHeadOfTheQueue_NotToEveryWaitingTicket()
    {
        using var h = new SchedulerHarness(Backend("a", 4, "m"));
        var running = h.AdmitMany(4, "alice");
        var waiting = h.AdmitMany(3, "bob");
        h.Scheduler.SetBackendHealth("a", false);
        foreach (var ticket in running)
        {
            LeaseOf(ticket).Fail();
        }

        h.Scheduler.AllowBackendTrial("a");

        Assert.Equal(TicketState.Running, waiting[0].State);
        Assert.All(waiting.Skip(1), ticket => Assert.Equal(TicketState.Waiting, ticket.State));
    }

    [Fact]
    public void SetBackendHealth_Unhealthy_WithdrawsAnUnusedTrial()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"));
        h.Scheduler.SetBackendHealth("a", false);
        h.Scheduler.AllowBackendTrial("a");

        h.Scheduler.SetBackendHealth("a", false);

        Assert.Equal(RefusalReason.NoHealthyBackend, h.TryAdmit("alice").Refusal!.Reason);
    }

    [Fact]
    public void SetBackendHealth_WhenHealthyAgain_DispatchesWaitingTickets()
    {
        using var h = new SchedulerHarness(Backend("a", 2, "m"), Backend("b", 1, "m"));
        h.Scheduler.SetBackendHealth("a", false);
        h.Admit("alice");
        var waiting = h.AdmitMany(2, "bob");

        h.Scheduler.SetBackendHealth("a", true);

        Assert.All(waiting, t => Assert.Equal("a", LeaseOf(t).Backend));
    }

    [Fact]
    public void SetBackendHealth_WhenUnhealthy_LetsRunningTicketsFinish()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"));
        var running = h.Admit("alice");

        h.Scheduler.SetBackendHealth("a", false);

        Assert.Equal(TicketState.Running, running.State);
        LeaseOf(running).Complete(0, 1);
        Assert.Equal(TicketOutcome.Completed, running.Outcome);
    }

    [Fact]
    public void SetBackendHealth_WithUnknownName_Throws()
    {
        using var h = new SchedulerHarness();

        Assert.Throws<ArgumentException>(() => h.Scheduler.SetBackendHealth("nope", false));
    }

    [Fact]
    public void Complete_CalledTwice_EndsTheTicketOnce()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("alice");
        var lease = LeaseOf(ticket);

        lease.Complete(0, 10);
        lease.Fail();
        lease.Dispose();

        Assert.Equal(TicketOutcome.Completed, ticket.Outcome);
        var snapshot = h.Scheduler.Snapshot();
        Assert.Equal(1, snapshot.Completed);
        Assert.Equal(0, snapshot.Failed + snapshot.Cancelled);
    }

    [Fact]
    public void Fail_EndsTicketFailedAndFreesTheSlot()
    {
        using var h = new SchedulerHarness();
        var first = h.Admit("alice");
        var second = h.Admit("bob");

        LeaseOf(first).Fail();

        Assert.Equal(TicketOutcome.Failed, first.Outcome);
        Assert.Equal(TicketState.Running, second.State);
    }

    [Fact]
    public void Find_ReturnsLiveTicketsOnly()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("alice", id: "req-1");

        Assert.Same(ticket, h.Scheduler.Find("req-1"));
        LeaseOf(ticket).Complete(0, 1);
        Assert.Null(h.Scheduler.Find("req-1"));
    }

    [Fact]
    public void Constructor_WithDuplicateBackendNames_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Scheduler(new SchedulerOptions(), [Backend("a", 1, "m"), Backend("a", 1, "m")]));
    }

    [Fact]
    public void Constructor_WithInvalidOptions_Throws()
    {
        var options = new SchedulerOptions { MaxDispatchAttempts = 0 };

        var error = Assert.Throws<ArgumentException>(() => new Scheduler(options, [Backend("a", 1, "m")]));
        Assert.Contains(nameof(SchedulerOptions.MaxDispatchAttempts), error.Message);
    }
}
