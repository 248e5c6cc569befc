using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class AdmissionTests
{
    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(1);

    [Fact]
    public void Admit_WhenQueueIsFull_RefusesWithQueueFullAndTimeToNextFreeSlot()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxQueueLength = 2 }, Backend("gpu", 1, "m"));
        h.Admit("a");
        h.Admit("b");
        h.Admit("c");

        var refusal = h.TryAdmit("d").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.QueueFull, refusal.Reason);
        AssertClose(PriorServiceTime, refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenUserHasTooManyWaiting_RefusesWithUserQueueFullAndTimeToItsNextDispatch()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxWaitingPerUser = 1 }, Backend("gpu", 1, "m"));
        h.Admit("alice");
        h.Admit("alice");

        var refusal = h.TryAdmit("alice").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserQueueFull, refusal.Reason);
        AssertClose(PriorServiceTime, refusal.RetryAfter);
        Assert.True(h.TryAdmit("bob").IsAdmitted);
    }

    [Fact]
    public void Admit_WhenUserHasTooManyInFlight_RefusesWithUserInFlightLimitAndTimeToItsFirstEnd()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxInFlightPerUser = 1 }, Backend("gpu", 2, "m"));
        h.Admit("alice");
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var refusal = h.TryAdmit("alice").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserInFlightLimit, refusal.Reason);
        AssertClose(PriorServiceTime - TimeSpan.FromSeconds(3), refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenUserHasOnlyWaitingTicketsInFlight_RetriesAfterTheFirstWouldEnd()
    {
        var options = new SchedulerOptions { MaxInFlightPerUser = 1 };
        using var h = new SchedulerHarness(options, Backend("gpu", 1, "m"));
        h.Admit("bob");
        h.Admit("alice");

        var refusal = h.TryAdmit("alice").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UserInFlightLimit, refusal.Reason);
        AssertClose(PriorServiceTime * 2, refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WithOwnersOwnLimits_AppliesTheLowerOfTheirsAndTheSchedulers()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxWaitingPerUser = 5, MaxInFlightPerUser = 10 }, Backend("gpu", 1, "m"));
        TicketRequest Ask(string owner, int? maxWaiting, int? maxInFlight) => new()
        {
            Id = Guid.NewGuid().ToString("N"), Owner = owner, Model = "m", MaxWaiting = maxWaiting, MaxInFlight = maxInFlight,
        };

        h.Admit("bob");
        Assert.True(h.Scheduler.Admit(Ask("alice", 1, null)).IsAdmitted);
        var waiting = h.Scheduler.Admit(Ask("alice", 1, null)).Refusal;
        Assert.Equal(RefusalReason.UserQueueFull, waiting?.Reason);
        Assert.Contains("the limit is 1", waiting!.Message, StringComparison.Ordinal);

        Assert.True(h.Scheduler.Admit(Ask("carol", null, 2)).IsAdmitted);
        Assert.True(h.Scheduler.Admit(Ask("carol", null, 2)).IsAdmitted);
        Assert.Equal(RefusalReason.UserInFlightLimit, h.Scheduler.Admit(Ask("carol", null, 2)).Refusal?.Reason);

        // A tier cannot raise a limit above the scheduler's own.
        for (int i = 0; i < 5; i++)
        {
            Assert.True(h.Scheduler.Admit(Ask("dave", 50, 50)).IsAdmitted);
        }

        Assert.Equal(RefusalReason.UserQueueFull, h.Scheduler.Admit(Ask("dave", 50, 50)).Refusal?.Reason);
    }

    [Fact]
    public void Admit_ForModelNoBackendServes_RefusesWithUnknownModelAndNoRetry()
    {
        using var h = new SchedulerHarness();

        var refusal = h.TryAdmit("alice", model: "gpt-9").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.UnknownModel, refusal.Reason);
        Assert.Null(refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenEveryBackendOfTheModelIsUnhealthy_RefusesWithNoHealthyBackend()
    {
        var options = new SchedulerOptions { NoBackendRetryAfter = TimeSpan.FromSeconds(7) };
        using var h = new SchedulerHarness(options, Backend("a", 1, "m"), Backend("b", 2, "m", "other"));
        h.Scheduler.SetBackendHealth("a", false);
        h.Scheduler.SetBackendHealth("b", false);

        var refusal = h.TryAdmit("alice").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.NoHealthyBackend, refusal.Reason);
        Assert.Equal(TimeSpan.FromSeconds(7), refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenOneBackendOfTheModelIsHealthy_Admits()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        h.Scheduler.SetBackendHealth("a", false);

        Assert.True(h.TryAdmit("alice").IsAdmitted);
    }

    [Fact]
    public void Admit_WhenEstimatedWaitExceedsRequestsMaxWait_RefusesWithWaitTooLong()
    {
        using var h = new SchedulerHarness();
        h.Admit("bob");

        var refusal = h.TryAdmit("alice", maxWait: TimeSpan.FromSeconds(2)).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.WaitTooLong, refusal.Reason);
        AssertClose(PriorServiceTime - TimeSpan.FromSeconds(2), refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenEstimatedWaitExceedsSchedulerMaxWait_RefusesWithWaitTooLong()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxWait = TimeSpan.FromSeconds(20) }, Backend("gpu", 1, "m"));
        h.Admit("a");
        h.Admit("b");
        h.Admit("c");

        // Position 3 behind a running ticket: about three service times.
        var refusal = h.TryAdmit("d").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.WaitTooLong, refusal.Reason);
    }

    [Fact]
    public void Admit_WhenWaitTooLongIsBarelyOver_RetriesAfterAtLeastOneSecond()
    {
        using var h = new SchedulerHarness();
        h.Admit("bob");

        var refusal = h.TryAdmit("alice", maxWait: PriorServiceTime - TimeSpan.FromMilliseconds(10)).Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(TimeSpan.FromSeconds(1), refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenIdIsLive_RefusesWithDuplicateId()
    {
        using var h = new SchedulerHarness();
        h.Admit("alice", id: "req-1");

        var refusal = h.TryAdmit("bob", id: "req-1").Refusal;

        Assert.NotNull(refusal);
        Assert.Equal(RefusalReason.DuplicateId, refusal.Reason);
        Assert.Null(refusal.RetryAfter);
    }

    [Fact]
    public void Admit_WhenIdsTicketHasEnded_AdmitsTheIdAgain()
    {
        using var h = new SchedulerHarness();
        var first = h.Admit("alice", id: "req-1");
        LeaseOf(first).Complete(0, 1);

        Assert.True(h.TryAdmit("alice", id: "req-1").IsAdmitted);
    }

    [Fact]
    public void Admit_WhenRefused_LeavesTheQueueUnchanged()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxQueueLength = 1 }, Backend("gpu", 1, "m"));
        h.Admit("a");
        var waiting = h.Admit("b");

        h.TryAdmit("c");

        var snapshot = h.Scheduler.Snapshot();
        Assert.Equal(2, snapshot.Admitted);
        Assert.Equal(1, snapshot.Waiting);
        Assert.Equal(1, h.PositionOf(waiting));
    }

    [Fact]
    public void Admit_WithInvalidRequest_ThrowsForMisuse()
    {
        using var h = new SchedulerHarness();

        Assert.Throws<ArgumentOutOfRangeException>(() => h.TryAdmit("alice", weight: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.TryAdmit("alice", promptTokens: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.TryAdmit("alice", maxOutputTokens: 0));
        Assert.Throws<ArgumentException>(() => h.TryAdmit("", model: "m"));
    }

    [Fact]
    public void Admit_WithMaxOutputTokens_ExpectsNoMoreThanThat()
    {
        using var h = new SchedulerHarness();

        var ticket = h.Admit("alice", promptTokens: 100, maxOutputTokens: 10);

        Assert.Equal(10, ticket.ExpectedOutputTokens);
        Assert.Equal(100 + (2 * 10), ticket.Cost);
    }

    [Fact]
    public void Admit_AfterDispose_Throws()
    {
        var h = new SchedulerHarness();
        h.Dispose();

        Assert.Throws<ObjectDisposedException>(() => h.TryAdmit("alice"));
    }

    private static void AssertClose(TimeSpan expected, TimeSpan? actual)
    {
        Assert.NotNull(actual);
        Assert.InRange(actual.Value, expected - Tolerance, expected + Tolerance);
    }
}
