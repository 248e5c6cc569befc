namespace Anteroom.Scheduling.Tests.Contract;

// change announcements: what holders pushing their place to a client, and the dashboards, wait on. A wait that
// should have ended is awaited in real time (the queue must end it by itself); one that must stay pending is
// checked after SettleAsync, when everything due has been announced.
public abstract partial class RequestQueueContractTests
{
    private static readonly TimeSpan Coalescing = TimeSpan.FromMilliseconds(100);

    [Fact]
    public async Task WaitForChange_ForAVersionReadBeforeAChange_CompletesOnceTheChangeIsAnnounced()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = Coalescing }, Backend("gpu", 1, "m"));
        long seen = h.Queue.ChangeVersion;
        await h.AdmitAsync("alice");

        // The change happened between reading the version and starting to wait: the wait must not miss it.
        var wait = h.Queue.WaitForChangeAsync(seen).AsTask();
        h.Time.Advance(Coalescing);

        await QueueHarness.EndOfAsync(wait);
        Assert.True(h.Queue.ChangeVersion > seen);
    }

    [Fact]
    public async Task WaitForChange_ForAVersionAlreadyPassed_CompletesWithoutTheClockMoving()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = Coalescing }, Backend("gpu", 1, "m"));
        long seen = h.Queue.ChangeVersion;
        await h.AdmitAsync("alice");
        h.Time.Advance(Coalescing);
        await h.SettleAsync();

        await QueueHarness.EndOfAsync(h.Queue.WaitForChangeAsync(seen).AsTask());
    }

    [Fact]
    public async Task WaitForChange_WhileNothingChanges_StaysPending_UntilAChange()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = Coalescing }, Backend("gpu", 1, "m"));
        var running = await h.AdmitAsync("alice");
        var waiting = await h.AdmitAsync("bob");
        h.Time.Advance(Coalescing);
        await h.SettleAsync();
        long seen = h.Queue.ChangeVersion;
        var wait = h.Queue.WaitForChangeAsync(seen).AsTask();

        // Reading changes nothing, and neither does time passing well within every deadline.
        await h.PlaceOfAsync(waiting);
        await h.WaitingAsync();
        await h.RunningAsync();
        await h.CountsAsync();
        await h.SnapshotAsync();
        await h.EstimateWaitAsync("m");
        h.Time.Advance(TimeSpan.FromSeconds(10));
        await h.SettleAsync();
        Assert.False(wait.IsCompleted);
        Assert.Equal(seen, h.Queue.ChangeVersion);

        (await h.LeaseOfAsync(running)).Complete(0, 256);
        h.Time.Advance(Coalescing);

        await QueueHarness.EndOfAsync(wait);
    }

    [Fact]
    public async Task WaitForChange_WhenARefusalChangesNothing_StaysPending()
    {
        // Under overload most arrivals are refused; waking every waiting holder for each would spend the pushes of
        // places on nothing.
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero, MaxWaitingPerUser = 1 }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("alice");
        await h.AdmitAsync("alice");
        await h.SettleAsync();
        var wait = h.Queue.WaitForChangeAsync(h.Queue.ChangeVersion).AsTask();

        Assert.False((await h.TryAdmitAsync("alice", model: "unknown")).IsAdmitted);
        Assert.False((await h.TryAdmitAsync("alice")).IsAdmitted);
        await h.SettleAsync();

        Assert.False(wait.IsCompleted);
    }

    [Fact]
    public async Task WaitForChange_WithCoalescing_WakesOnceAtTheEndOfTheInterval()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = Coalescing }, Backend("gpu", 1, "m"));
        long seen = h.Queue.ChangeVersion;
        var wait = h.Queue.WaitForChangeAsync(seen).AsTask();

        await h.AdmitAsync("a");
        await h.AdmitAsync("b");
        await h.Queue.CancelAsync((await h.AdmitAsync("c")).Id);
        h.Time.Advance(Coalescing - TimeSpan.FromMilliseconds(1));
        await h.SettleAsync();
        Assert.False(wait.IsCompleted);

        h.Time.Advance(TimeSpan.FromMilliseconds(1));

        await QueueHarness.EndOfAsync(wait);
        Assert.Equal(seen + 1, h.Queue.ChangeVersion);
    }

    [Fact]
    public async Task WaitForChange_AfterAnAnnouncement_WaitsForTheNextChange()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = Coalescing }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        h.Time.Advance(Coalescing);
        await h.SettleAsync();
        long seen = h.Queue.ChangeVersion;

        var wait = h.Queue.WaitForChangeAsync(seen).AsTask();
        h.Time.Advance(TimeSpan.FromSeconds(10));
        await h.SettleAsync();
        Assert.False(wait.IsCompleted);

        await h.AdmitAsync("b");
        h.Time.Advance(Coalescing);

        await QueueHarness.EndOfAsync(wait);
    }

    [Fact]
    public async Task WaitForChange_WithZeroCoalescing_WakesWithoutTheClockMoving()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero }, Backend("gpu", 1, "m"));
        long seen = h.Queue.ChangeVersion;
        var wait = h.Queue.WaitForChangeAsync(seen).AsTask();

        await h.AdmitAsync("a");

        await QueueHarness.EndOfAsync(wait);
        Assert.Equal(seen + 1, h.Queue.ChangeVersion);
    }

    [Fact]
    public async Task WaitForChange_WhenItsTokenIsCancelled_EndsCancelled_AndOtherWaitsStillSeeTheNextChange()
    {
        await using var h = Harness(new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero }, Backend("gpu", 1, "m"));
        using var left = new CancellationTokenSource();
        long seen = h.Queue.ChangeVersion;
        var leaving = h.Queue.WaitForChangeAsync(seen, left.Token).AsTask();
        var staying = h.Queue.WaitForChangeAsync(seen).AsTask();

        await left.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => QueueHarness.EndOfAsync(leaving));
        await h.SettleAsync();
        Assert.False(staying.IsCompleted);
        await h.AdmitAsync("alice");
        await QueueHarness.EndOfAsync(staying);
    }
}
