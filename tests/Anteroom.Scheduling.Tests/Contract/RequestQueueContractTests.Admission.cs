
namespace Anteroom.Scheduling.Tests.Contract;

// admission
public abstract partial class RequestQueueContractTests
{

    [Fact]
    public async Task Admit_WhenQueueIsFull_RefusesWithQueueFullAndTimeToNextFreeSlot()
    {
        await using var h = Harness(new SchedulerOptions { MaxQueueLength = 2 }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        await h.AdmitAsync("b");
        await h.AdmitAsync("c");

        var refusal = (await h.TryAdmitAsync("d")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.QueueFull, refusal.Reason);
        AssertClose(PriorServiceTime, refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenUserHasTooManyWaiting_RefusesWithUserQueueFullAndTimeToItsNextDispatch()
    {
        await using var h = Harness(new SchedulerOptions { MaxWaitingPerUser = 1 }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("alice");
        await h.AdmitAsync("alice");

        var refusal = (await h.TryAdmitAsync("alice")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserQueueFull, refusal.Reason);
        AssertClose(PriorServiceTime, refusal.RetryAfter);
        Assert.True((await h.TryAdmitAsync("bob")).IsAdmitted);
    }

    [Fact]
    public async Task Admit_WhenUserHasTooManyInFlight_RefusesWithUserInFlightLimitAndTimeToItsFirstEnd()
    {
        await using var h = Harness(new SchedulerOptions { MaxInFlightPerUser = 1 }, Backend("gpu", 2, "m"));
        await h.AdmitAsync("alice");
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var refusal = (await h.TryAdmitAsync("alice")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserInFlightLimit, refusal.Reason);
        AssertClose(PriorServiceTime - TimeSpan.FromSeconds(3), refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenUserHasOnlyWaitingTicketsInFlight_RetriesAfterTheFirstWouldEnd()
    {
        var options = new SchedulerOptions { MaxInFlightPerUser = 1 };
        await using var h = Harness(options, Backend("gpu", 1, "m"));
        await h.AdmitAsync("bob");
        await h.AdmitAsync("alice");

        var refusal = (await h.TryAdmitAsync("alice")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserInFlightLimit, refusal.Reason);
        AssertClose(PriorServiceTime * 2, refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WithOwnersOwnLimits_AppliesTheLowerOfTheirsAndTheSchedulers()
    {
        await using var h = Harness(new SchedulerOptions { MaxWaitingPerUser = 5, MaxInFlightPerUser = 10 }, Backend("gpu", 1, "m"));
        TicketRequest Ask(string owner, int? maxWaiting, int? maxInFlight) => new()
        {
            Id = Guid.NewGuid().ToString("N"),
            Owner = owner,
            Model = "m",
            MaxWaiting = maxWaiting,
            MaxInFlight = maxInFlight,
        };

        await h.AdmitAsync("bob");
        Assert.True((await h.TryAdmitAsync(Ask("alice", 1, null))).IsAdmitted);
        var waiting = (await h.TryAdmitAsync(Ask("alice", 1, null))).Refusal;
        Assert.Equal(RefusalReason.UserQueueFull, waiting?.Reason);
        Assert.Contains("the limit is 1", waiting!.Message, StringComparison.Ordinal);

        Assert.True((await h.TryAdmitAsync(Ask("carol", null, 2))).IsAdmitted);
        Assert.True((await h.TryAdmitAsync(Ask("carol", null, 2))).IsAdmitted);
        Assert.Equal(RefusalReason.UserInFlightLimit, (await h.TryAdmitAsync(Ask("carol", null, 2))).Refusal?.Reason);

        // A tier cannot raise a limit above the scheduler's own.
        for (int i = 0; i < 5; i++)
        {
            Assert.True((await h.TryAdmitAsync(Ask("dave", 50, 50))).IsAdmitted);
        }

        Assert.Equal(RefusalReason.UserQueueFull, (await h.TryAdmitAsync(Ask("dave", 50, 50))).Refusal?.Reason);
    }

    [Fact]
    public async Task Admit_ForModelNoBackendServes_RefusesWithUnknownModelAndNoRetry()
    {
        await using var h = Harness();

        var refusal = (await h.TryAdmitAsync("alice", model: "gpt-9")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UnknownModel, refusal.Reason);
        Assert.Null(refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenEveryBackendOfTheModelIsUnhealthy_RefusesWithNoHealthyBackend()
    {
        var options = new SchedulerOptions { NoBackendRetryAfter = TimeSpan.FromSeconds(7) };
        await using var h = Harness(options, Backend("a", 1, "m"), Backend("b", 2, "m", "other"));
        await h.Queue.SetBackendHealthAsync("a", false);
        await h.Queue.SetBackendHealthAsync("b", false);

        var refusal = (await h.TryAdmitAsync("alice")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.NoHealthyBackend, refusal.Reason);
        Assert.Equal(TimeSpan.FromSeconds(7), refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenOneBackendOfTheModelIsHealthy_Admits()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);

        Assert.True((await h.TryAdmitAsync("alice")).IsAdmitted);
    }

    [Fact]
    public async Task Admit_WhenEstimatedWaitExceedsRequestsMaxWait_RefusesWithWaitTooLong()
    {
        await using var h = Harness();
        await h.AdmitAsync("bob");

        var refusal = (await h.TryAdmitAsync("alice", maxWait: TimeSpan.FromSeconds(2))).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.WaitTooLong, refusal.Reason);
        AssertClose(PriorServiceTime - TimeSpan.FromSeconds(2), refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenEstimatedWaitExceedsSchedulerMaxWait_RefusesWithWaitTooLong()
    {
        await using var h = Harness(new SchedulerOptions { MaxWait = TimeSpan.FromSeconds(20) }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        await h.AdmitAsync("b");
        await h.AdmitAsync("c");

        // Position 3 behind a running ticket: about three service times.
        var refusal = (await h.TryAdmitAsync("d")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.WaitTooLong, refusal.Reason);
    }

    [Fact]
    public async Task Admit_WhenWaitTooLongIsBarelyOver_RetriesAfterAtLeastOneSecond()
    {
        await using var h = Harness();
        await h.AdmitAsync("bob");

        var refusal = (await h.TryAdmitAsync("alice", maxWait: PriorServiceTime - TimeSpan.FromMilliseconds(10))).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(TimeSpan.FromSeconds(1), refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenIdIsLive_RefusesWithDuplicateId()
    {
        await using var h = Harness();
        await h.AdmitAsync("alice", id: "req-1");

        var refusal = (await h.TryAdmitAsync("bob", id: "req-1")).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.DuplicateId, refusal.Reason);
        Assert.Null(refusal.RetryAfter);
    }

    [Fact]
    public async Task Admit_WhenIdsTicketHasEnded_AdmitsTheIdAgain()
    {
        await using var h = Harness();
        var first = await h.AdmitAsync("alice", id: "req-1");
        (await h.LeaseOfAsync(first)).Complete(0, 1);

        Assert.True((await h.TryAdmitAsync("alice", id: "req-1")).IsAdmitted);
    }

    [Fact]
    public async Task Admit_WhenRefused_LeavesTheQueueUnchanged()
    {
        await using var h = Harness(new SchedulerOptions { MaxQueueLength = 1 }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b");

        await h.TryAdmitAsync("c");

        var snapshot = (await h.SnapshotAsync());
        Assert.Equal(2, snapshot.Admitted);
        Assert.Equal(1, snapshot.Waiting);
        Assert.Equal(1, await h.PositionOfAsync(waiting));
    }

    [Fact]
    public async Task Admit_WithInvalidRequest_ThrowsForMisuse()
    {
        await using var h = Harness();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.TryAdmitAsync("alice", weight: 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.TryAdmitAsync("alice", promptTokens: -1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => h.TryAdmitAsync("alice", maxOutputTokens: 0));
        await Assert.ThrowsAsync<ArgumentException>(() => h.TryAdmitAsync("", model: "m"));
    }
}
