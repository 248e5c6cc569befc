
namespace Anteroom.Scheduling.Tests.Contract;

// requeue
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task TryRequeue_WhenAnotherBackendIsFree_RunsTheTicketThere()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        var firstLease = (await h.LeaseOfAsync(ticket));
        Assert.Equal("a", firstLease.Backend);

        Assert.True(h.TryRequeue(firstLease));

        var secondLease = (await h.LeaseOfAsync(ticket));
        Assert.NotSame(firstLease, secondLease);
        Assert.Equal("b", secondLease.Backend);
        Assert.Equal(2, ticket.Attempts);
        Assert.Equal(1, (await h.SnapshotAsync()).Requeued);
    }

    [Fact]
    public async Task TryRequeue_WhenNoOtherBackendIsFree_RunsTheTicketAgainBeforeLaterArrivals()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        await h.AdmitAsync("bob");
        var later = await h.AdmitAsync("carol");

        Assert.True(h.TryRequeue(await h.LeaseOfAsync(ticket)));

        Assert.Equal("a", (await h.LeaseOfAsync(ticket)).Backend);
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(later)));
    }

    [Fact]
    public async Task TryRequeue_WhenNoSlotIsFree_PutsTheTicketAtTheHeadOfTheQueue()
    {
        await using var h = Harness(Backend("a", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        var others = new[] { await h.AdmitAsync("bob"), await h.AdmitAsync("carol"), await h.AdmitAsync("alice") };
        await h.Queue.SetBackendHealthAsync("a", false);

        Assert.True(h.TryRequeue(await h.LeaseOfAsync(ticket)));

        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(ticket)));
        Assert.False(h.WaitOf(ticket).IsCompleted);
        Assert.Equal(1, await h.PositionOfAsync(ticket));
        Assert.Equal([2, 3, 4], (await h.PlacesOfAsync(others)).Select(p => p!.Value.Position));
    }

    [Fact]
    public async Task TryRequeue_WhenBackendRecovers_DispatchesTheTicketAgain()
    {
        await using var h = Harness(Backend("a", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        await h.AdmitAsync("bob");
        await h.Queue.SetBackendHealthAsync("a", false);
        h.TryRequeue(await h.LeaseOfAsync(ticket));

        await h.Queue.SetBackendHealthAsync("a", true);

        Assert.Equal("a", (await h.LeaseOfAsync(ticket)).Backend);
        Assert.Equal(2, ticket.Attempts);
    }

    [Fact]
    public async Task TryRequeue_WhenAttemptsAreExhausted_FailsTheTicket()
    {
        await using var h = Harness(new SchedulerOptions { MaxDispatchAttempts = 2 }, Backend("a", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        Assert.True(h.TryRequeue(await h.LeaseOfAsync(ticket)));

        Assert.False(h.TryRequeue(await h.LeaseOfAsync(ticket)));

        Assert.Equal(TicketOutcome.Failed, (await h.OutcomeOfAsync(ticket)));
        Assert.Equal(1, (await h.SnapshotAsync()).Failed);
        Assert.Empty((await h.RunningAsync()));
    }

    [Fact]
    public async Task TryRequeue_WhenTicketWasCancelledWhileRunning_EndsItCancelled()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        await h.Queue.CancelAsync(ticket.Id);

        Assert.False(h.TryRequeue(await h.LeaseOfAsync(ticket)));

        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(ticket)));
        Assert.Empty((await h.RunningAsync()));
    }

    [Fact]
    public async Task TryRequeue_AfterTheLeaseEnded_DoesNothing()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("alice");
        var lease = (await h.LeaseOfAsync(ticket));
        lease.Complete(0, 1);

        Assert.False(lease.TryRequeue());
        Assert.Equal(TicketOutcome.Completed, (await h.OutcomeOfAsync(ticket)));
    }

    [Fact]
    public async Task TryRequeue_GivesTheTicketAFreshDeadline()
    {
        var options = new SchedulerOptions { MaxWait = TimeSpan.FromMinutes(1) };
        await using var h = Harness(options, Backend("a", 1, "m"));
        var ticket = await h.AdmitAsync("alice");
        await h.Queue.SetBackendHealthAsync("a", false);
        h.Time.Advance(TimeSpan.FromSeconds(50));

        h.TryRequeue(await h.LeaseOfAsync(ticket));
        h.Time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(ticket)));

        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(ticket)));
    }
}
