namespace Anteroom.Scheduling.Tests;

public sealed class ChangeFeedTests
{
    [Fact]
    public void WaitForChange_WithCoalescing_WakesOnceAfterTheInterval()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.FromMilliseconds(100) };
        using var h = new SchedulerHarness(options, SchedulerHarness.Backend("gpu", 1, "m"));
        long seen = h.Scheduler.ChangeVersion;
        var wait = h.Scheduler.WaitForChangeAsync(seen);

        h.Admit("a");
        h.Admit("b");
        h.Scheduler.Cancel(h.Admit("c"));
        h.Time.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(wait.IsCompleted);

        h.Time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.True(wait.IsCompletedSuccessfully);
        Assert.Equal(seen + 1, h.Scheduler.ChangeVersion);
    }

    [Fact]
    public void WaitForChange_AfterAnAnnouncement_WaitsForTheNextChange()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.FromMilliseconds(100) };
        using var h = new SchedulerHarness(options, SchedulerHarness.Backend("gpu", 1, "m"));
        h.Admit("a");
        h.Time.Advance(TimeSpan.FromMilliseconds(100));
        long seen = h.Scheduler.ChangeVersion;

        var wait = h.Scheduler.WaitForChangeAsync(seen);
        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.False(wait.IsCompleted);

        h.Admit("b");
        h.Time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.True(wait.IsCompletedSuccessfully);
    }

    [Fact]
    public void WaitForChange_WithZeroCoalescing_WakesAtOnce()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero };
        using var h = new SchedulerHarness(options, SchedulerHarness.Backend("gpu", 1, "m"));
        long seen = h.Scheduler.ChangeVersion;
        var wait = h.Scheduler.WaitForChangeAsync(seen);

        h.Admit("a");

        Assert.True(wait.IsCompletedSuccessfully);
        Assert.Equal(seen + 1, h.Scheduler.ChangeVersion);
    }

    [Fact]
    public void WaitForChange_ForAnOlderVersion_CompletesAtOnce()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero };
        using var h = new SchedulerHarness(options, SchedulerHarness.Backend("gpu", 1, "m"));
        long seen = h.Scheduler.ChangeVersion;
        h.Admit("a");

        Assert.True(h.Scheduler.WaitForChangeAsync(seen).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task WaitForChange_WhenCancelled_StopsWaiting()
    {
        using var h = new SchedulerHarness();
        using var left = new CancellationTokenSource();
        var wait = h.Scheduler.WaitForChangeAsync(h.Scheduler.ChangeVersion, left.Token);

        await left.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
    }

    [Fact]
    public void WaitForChange_WhenARefusalChangesNothing_StaysPending()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero };
        using var h = new SchedulerHarness(options, SchedulerHarness.Backend("gpu", 1, "m"));
        var wait = h.Scheduler.WaitForChangeAsync(h.Scheduler.ChangeVersion);

        h.TryAdmit("alice", model: "unknown");

        Assert.False(wait.IsCompleted);
    }
}
