
namespace Anteroom.Scheduling.Tests.Contract;

// cancellation
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task Cancel_WhenWaiting_RemovesTicketFromQueue()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var b = await h.AdmitAsync("b");
        var c = await h.AdmitAsync("c");

        Assert.True(await h.Queue.CancelAsync(b.Id));

        Assert.Null((await h.PlaceOfAsync(b)));
        Assert.Equal(new WaitingPlace(1, 1, (await h.PlaceOfAsync(c))!.Value.EstimatedWait), (await h.PlaceOfAsync(c)));
        Assert.DoesNotContain(await h.WaitingAsync(), w => w.Id == b.Id);
    }

    [Fact]
    public async Task Cancel_WhenWaiting_EndsTicketCancelledAndEndsItsWaitWithoutLease()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var b = await h.AdmitAsync("b");

        await h.Queue.CancelAsync(b.Id);

        Assert.Equal(TicketState.Ended, (await h.StateOfAsync(b)));
        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(b)));
        Assert.Equal(h.Time.GetUtcNow(), b.EndedAt);
        var dispatch = await h.EndOfWaitAsync(b);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
    }

    [Fact]
    public async Task Cancel_WhenWaiting_NeverGivesTheTicketASlotLater()
    {
        await using var h = Harness();
        var a = await h.AdmitAsync("a");
        var b = await h.AdmitAsync("b");
        var c = await h.AdmitAsync("c");
        await h.Queue.CancelAsync(b.Id);

        (await h.LeaseOfAsync(a)).Complete(0, 256);

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(c)));
        Assert.Null(b.FirstDispatchedAt);
    }

    [Fact]
    public async Task Cancel_ById_CancelsTheLiveTicket()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var b = await h.AdmitAsync("b", id: "req-b");

        Assert.True(await h.Queue.CancelAsync("req-b"));
        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(b)));
        Assert.False(await h.Queue.CancelAsync("req-b"));
        Assert.False(await h.Queue.CancelAsync("no-such-id"));
    }

    [Fact]
    public async Task Cancel_WhenEnded_ReturnsFalseAndKeepsTheOutcome()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("a");
        (await h.LeaseOfAsync(ticket)).Complete(0, 1);

        Assert.False(await h.Queue.CancelAsync(ticket.Id));
        Assert.Equal(TicketOutcome.Completed, (await h.OutcomeOfAsync(ticket)));
    }

    [Fact]
    public async Task Cancel_WhenRunning_FiresAbortedAndKeepsTheSlotUntilTheLeaseEnds()
    {
        await using var h = Harness();
        var running = await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b");

        Assert.True(await h.Queue.CancelAsync(running.Id));

        Assert.True(running.Aborted.IsCancellationRequested);
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(running)));
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(waiting)));
    }

    [Fact]
    public async Task Cancel_WhenRunning_FiresTheTokenTheHolderTookBefore()
    {
        // The abort source is made on first use: a token taken before the cancel must be the one it fires.
        await using var h = Harness();
        var running = await h.AdmitAsync("a");
        var aborted = running.Aborted;

        Assert.False(aborted.IsCancellationRequested);
        Assert.True(await h.Queue.CancelAsync(running.Id));

        Assert.True(aborted.IsCancellationRequested);
        Assert.Equal(aborted, running.Aborted);
    }

    [Fact]
    public async Task Dispose_OfAbortedLease_EndsTicketCancelledAndRunsTheNext()
    {
        await using var h = Harness();
        var running = await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b");
        await h.Queue.CancelAsync(running.Id);

        (await h.LeaseOfAsync(running)).Dispose();

        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(running)));
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(waiting)));
        Assert.Equal(1, (await h.SnapshotAsync()).Cancelled);
    }

    [Fact]
    public async Task Dispose_OfLeaseNotEnded_CountsTheTicketCancelled()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("a");

        using ((await h.LeaseOfAsync(ticket)))
        {
        }

        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(ticket)));
        Assert.Empty((await h.RunningAsync()));
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenTokenIsCancelled_CancelsTheWaitingTicket()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        using var left = new CancellationTokenSource();
        var ticket = await h.AdmitAsync("b", holderLeaves: left.Token);
        var wait = h.WaitOf(ticket);

        await left.CancelAsync();
        var dispatch = await wait;

        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(ticket)));
        Assert.Equal(0, (await h.SnapshotAsync()).Waiting);
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenSlotFrees_ReturnsTheLease()
    {
        await using var h = Harness();
        var first = await h.AdmitAsync("a");
        using var left = new CancellationTokenSource();
        var ticket = await h.AdmitAsync("b", holderLeaves: left.Token);
        var wait = h.WaitOf(ticket);

        (await h.LeaseOfAsync(first)).Complete(0, 256);
        var dispatch = await wait;

        Assert.NotNull(dispatch.Lease);
        Assert.Same(ticket, dispatch.Lease.Ticket);
    }

    [Fact]
    public async Task WaitForSlotAsync_WhenTokenIsCancelledAfterTheSlotCame_LeavesTheTicketRunning()
    {
        await using var h = Harness();
        using var left = new CancellationTokenSource();
        var ticket = await h.AdmitAsync("a", holderLeaves: left.Token);

        var dispatch = await h.EndOfWaitAsync(ticket);
        await left.CancelAsync();

        Assert.NotNull(dispatch.Lease);
        Assert.False(ticket.Aborted.IsCancellationRequested);
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(ticket)));
    }

    [Fact]
    public async Task WaitForSlotAsync_WithTokenAlreadyCancelled_CancelsTheTicketAtOnce()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var ticket = await h.AdmitAsync("b", holderLeaves: new CancellationToken(canceled: true));

        var dispatch = await h.EndOfWaitAsync(ticket);

        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(ticket)));
    }

    [Fact]
    public async Task Cancel_OfOwnersNewestWaitingTicket_GivesBackWhatItBooked()
    {
        await using var h = Harness();
        await h.AdmitManyAsync(2, "alice");
        var regret = await h.AdmitAsync("alice");
        await h.Queue.CancelAsync(regret.Id);

        // Alice's next ticket takes the cancelled one's share, not the share after it.
        var next = await h.AdmitAsync("alice");
        var bob = await h.AdmitManyAsync(4, "bob");

        Assert.Equal(4, await h.PositionOfAsync(next));
        Assert.Equal(5, await h.PositionOfAsync(bob[2]));
    }
}
