
namespace Anteroom.Scheduling.Tests.Contract;

// dispatch
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task Admit_WhenSlotIsFree_DispatchesAtOnce()
    {
        await using var h = Harness();

        var ticket = await h.AdmitAsync("alice");

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(ticket)));
        var lease = (await h.LeaseOfAsync(ticket));
        Assert.Equal("gpu", lease.Backend);
        Assert.Equal("gpu", ticket.Backend);
        Assert.Equal(1, ticket.Attempts);
        Assert.Equal(h.Time.GetUtcNow(), ticket.FirstDispatchedAt);
    }

    [Fact]
    public async Task Admit_WhenAllSlotsAreBusy_Waits()
    {
        await using var h = Harness();
        await h.AdmitAsync("alice");

        var second = await h.AdmitAsync("bob");

        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(second)));
        Assert.False(h.WaitOf(second).IsCompleted);
        Assert.Null(second.FirstDispatchedAt);
    }

    [Fact]
    public async Task Dispatch_WhenSlotFrees_RunsNextWaitingTicket()
    {
        await using var h = Harness();
        var first = await h.AdmitAsync("alice");
        var second = await h.AdmitAsync("bob");

        (await h.LeaseOfAsync(first)).Complete(10, 20);

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(second)));
        Assert.Same(second, (await h.LeaseOfAsync(second)).Ticket);
        Assert.Equal(TicketOutcome.Completed, (await h.OutcomeOfAsync(first)));
    }

    [Fact]
    public async Task Dispatch_WithinOneUser_RunsTicketsInArrivalOrder()
    {
        await using var h = Harness();
        var tickets = await h.AdmitManyAsync(6, "alice");

        Assert.Equal(tickets, await h.RunInOrderAsync());
    }

    [Fact]
    public async Task Dispatch_WithSeveralSlots_FillsEverySlot()
    {
        await using var h = Harness(Backend("gpu", 3, "m"));

        var tickets = await h.AdmitManyAsync(4, "alice");

        Assert.Equal(3, (await h.StatesOfAsync(tickets)).Count(s => s == TicketState.Running));
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(tickets[3])));
    }

    [Fact]
    public async Task Dispatch_WhenOneModelIsBusy_RunsAnotherModelOnItsFreeBackend()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        await h.AdmitAsync("alice", "llama");
        var blocked = await h.AdmitAsync("alice", "llama");

        var other = await h.AdmitAsync("bob", "qwen");

        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(blocked)));
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(other)));
        Assert.Equal("b", (await h.LeaseOfAsync(other)).Backend);
    }

    [Fact]
    public async Task Dispatch_WhenSlotFreesOnTwoModelBackend_RunsTheOtherModelsWaitingTicket()
    {
        await using var h = Harness(Backend("llama-only", 1, "llama"), Backend("shared", 1, "llama", "qwen"));
        var llama1 = await h.AdmitAsync("alice", "llama");
        var llama2 = await h.AdmitAsync("alice", "llama");
        var qwen = await h.AdmitAsync("bob", "qwen");
        Assert.Equal("llama-only", (await h.LeaseOfAsync(llama1)).Backend);
        Assert.Equal("shared", (await h.LeaseOfAsync(llama2)).Backend);
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(qwen)));

        (await h.LeaseOfAsync(llama2)).Complete(0, 256);

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(qwen)));
        Assert.Equal("shared", (await h.LeaseOfAsync(qwen)).Backend);
    }

    [Fact]
    public async Task Dispatch_OnTwoModelBackend_UsesEverySlotForWhicheverModelsWait()
    {
        await using var h = Harness(Backend("shared", 3, "llama", "qwen"));

        var llama = await h.AdmitAsync("alice", "llama");
        var qwen1 = await h.AdmitAsync("bob", "qwen");
        var qwen2 = await h.AdmitAsync("bob", "qwen");

        Assert.All(await h.StatesOfAsync([llama, qwen1, qwen2]), s => Assert.Equal(TicketState.Running, s));
    }

    [Fact]
    public async Task Dispatch_WhenSlotFreesOnSingleModelBackend_NeverRunsAnotherModelThere()
    {
        await using var h = Harness(Backend("llama-only", 1, "llama"), Backend("qwen-only", 1, "qwen"));
        var llama = await h.AdmitAsync("alice", "llama");
        await h.AdmitAsync("bob", "qwen");
        var qwenWaiting = await h.AdmitAsync("bob", "qwen");

        (await h.LeaseOfAsync(llama)).Complete(0, 256);

        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(qwenWaiting)));
        Assert.DoesNotContain((await h.RunningAsync()), l => l.Backend == "llama-only");
    }

    [Fact]
    public async Task Dispatch_WithTwoFreeBackends_PrefersTheLessLoadedOne()
    {
        await using var h = Harness(Backend("big", 4, "m"), Backend("small", 1, "m"));
        await h.AdmitAsync("alice");

        var second = await h.AdmitAsync("bob");

        Assert.Equal("small", (await h.LeaseOfAsync(second)).Backend);
    }

    [Fact]
    public async Task SetBackendHealth_WhenUnhealthy_GivesItNoNewTickets()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);

        var first = await h.AdmitAsync("alice");
        var second = await h.AdmitAsync("bob");

        Assert.Equal("b", (await h.LeaseOfAsync(first)).Backend);
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(second)));
        Assert.False((await h.SnapshotAsync()).Backends.Single(b => b.Name == "a").Healthy);
    }

    [Fact]
    public async Task SetBackendHealth_WhenHealthyAgain_DispatchesWaitingTickets()
    {
        await using var h = Harness(Backend("a", 2, "m"), Backend("b", 1, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);
        await h.AdmitAsync("alice");
        var waiting = await h.AdmitManyAsync(2, "bob");

        await h.Queue.SetBackendHealthAsync("a", true);

        Assert.All(await h.LeasesOfAsync(waiting), l => Assert.Equal("a", l.Backend));
    }

    [Fact]
    public async Task SetBackendHealth_WhenUnhealthy_LetsRunningTicketsFinish()
    {
        await using var h = Harness(Backend("a", 1, "m"));
        var running = await h.AdmitAsync("alice");

        await h.Queue.SetBackendHealthAsync("a", false);

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(running)));
        (await h.LeaseOfAsync(running)).Complete(0, 1);
        Assert.Equal(TicketOutcome.Completed, (await h.OutcomeOfAsync(running)));
    }

    [Fact]
    public async Task SetBackendHealth_WithUnknownName_Throws()
    {
        await using var h = Harness();

        await Assert.ThrowsAsync<ArgumentException>(async () => await h.Queue.SetBackendHealthAsync("nope", false));
    }

    [Fact]
    public async Task Complete_CalledTwice_EndsTheTicketOnce()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("alice");
        var lease = (await h.LeaseOfAsync(ticket));

        lease.Complete(0, 10);
        lease.Fail();
        lease.Dispose();

        Assert.Equal(TicketOutcome.Completed, (await h.OutcomeOfAsync(ticket)));
        var snapshot = (await h.SnapshotAsync());
        Assert.Equal(1, snapshot.Completed);
        Assert.Equal(0, snapshot.Failed + snapshot.Cancelled);
    }

    [Fact]
    public async Task Fail_EndsTicketFailedAndFreesTheSlot()
    {
        await using var h = Harness();
        var first = await h.AdmitAsync("alice");
        var second = await h.AdmitAsync("bob");

        (await h.LeaseOfAsync(first)).Fail();

        Assert.Equal(TicketOutcome.Failed, (await h.OutcomeOfAsync(first)));
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(second)));
    }
}
