using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class EstimateTests
{
    // 1 s to the first token, then 900 more tokens in 9 s: 100 tokens/s, 901 tokens, 10.01 s in all.
    private static readonly TimeSpan MeasuredService = TimeSpan.FromMilliseconds(1000 + (1000.0 * 901 / 100));

    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(1);

    [Fact]
    public void GetPlace_BeforeAnyMeasurement_EstimatesFromThePrior()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var waiting = h.Admit("b");

        AssertClose(PriorServiceTime, h.Scheduler.GetPlace(waiting)!.Value.EstimatedWait);
    }

    [Fact]
    public void GetPlace_AfterMeasuredCompletions_EstimatesFromMeasuredServiceTimeAndSlots()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        Measure(h, "gpu");
        h.Admit("a");
        var waiting = new[] { h.Admit("b"), h.Admit("c"), h.Admit("d") };

        h.Time.Advance(TimeSpan.FromSeconds(4));

        // The running ticket has about 6 s left; two whole services go before the third in line.
        var remaining = MeasuredService - TimeSpan.FromSeconds(4);
        AssertClose(remaining, h.Scheduler.GetPlace(waiting[0])!.Value.EstimatedWait);
        AssertClose(remaining + MeasuredService, h.Scheduler.GetPlace(waiting[1])!.Value.EstimatedWait);
        AssertClose(remaining + (2 * MeasuredService), h.Scheduler.GetPlace(waiting[2])!.Value.EstimatedWait);
    }

    [Fact]
    public void GetPlace_WithTwoSlots_CountsRoundsOfTwoDispatches()
    {
        using var h = new SchedulerHarness(Backend("gpu", 2, "m"));
        Measure(h, "gpu");
        h.Admit("a");
        h.Time.Advance(TimeSpan.FromSeconds(2));
        h.Admit("b");
        var waiting = new[] { h.Admit("c"), h.Admit("d"), h.Admit("e") };

        // Slots free at 8.01 s (a) and 10.01 s (b); the third in line waits for a's slot to serve c first.
        var first = MeasuredService - TimeSpan.FromSeconds(2);
        AssertClose(first, h.Scheduler.GetPlace(waiting[0])!.Value.EstimatedWait);
        AssertClose(MeasuredService, h.Scheduler.GetPlace(waiting[1])!.Value.EstimatedWait);
        AssertClose(first + MeasuredService, h.Scheduler.GetPlace(waiting[2])!.Value.EstimatedWait);
    }

    [Fact]
    public void GetPlace_WhenRunningTicketOverruns_EstimatesItsSlotFreeNow()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        Measure(h, "gpu");
        h.Admit("a");
        var waiting = h.Admit("b");

        h.Time.Advance(MeasuredService * 2);

        Assert.Equal(TimeSpan.Zero, h.Scheduler.GetPlace(waiting)!.Value.EstimatedWait);
    }

    [Fact]
    public void GetPlace_WithMaxOutputTokens_ExpectsTheRunningTicketToEndSooner()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        Measure(h, "gpu");
        h.Admit("a", maxOutputTokens: 101);
        var waiting = h.Admit("b");

        // 1 s to the first token and 101 tokens at 100/s.
        AssertClose(TimeSpan.FromMilliseconds(2010), h.Scheduler.GetPlace(waiting)!.Value.EstimatedWait);
    }

    [Fact]
    public void Snapshot_AfterMeasuredCompletions_ReportsTheModelsServiceTime()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));

        Measure(h, "gpu");

        var model = Assert.Single(h.Scheduler.Snapshot().Models);
        AssertClose(MeasuredService, model.EstimatedServiceTime);
    }

    [Fact]
    public void Estimate_AfterSlowerMeasurement_MovesPartWayTowardsIt()
    {
        var options = new SchedulerOptions { EstimateSmoothing = 0.5 };
        using var h = new SchedulerHarness(options, Backend("gpu", 1, "m"));
        Measure(h, "gpu");

        // A second run taking 3 s to its first token: the blended figure is 2 s.
        var lease = LeaseOf(h.Admit("x"));
        h.Time.Advance(TimeSpan.FromSeconds(3));
        lease.MarkFirstToken();
        h.Time.Advance(TimeSpan.FromSeconds(9));
        lease.Complete(0, 901);

        var model = Assert.Single(h.Scheduler.Snapshot().Models);
        AssertClose(MeasuredService + TimeSpan.FromSeconds(1), model.EstimatedServiceTime);
    }

    [Fact]
    public void GetPlace_ForTicketRunningSinceBeforeTheFirstMeasurement_UsesWhatIsMeasuredNow()
    {
        using var h = new SchedulerHarness(Backend("gpu", 2, "m"));
        var admittedOnThePrior = h.Admit("early");
        Measure(h, "gpu");
        h.Admit("filler");
        var waiting = h.Admit("b");

        // "early" ran 10 s already; by the measured 10.01 s service it is about to end, not 8.5 s of prior away.
        Assert.Equal(TicketState.Running, admittedOnThePrior.State);
        AssertClose(MeasuredService - TimeSpan.FromSeconds(10), h.Scheduler.GetPlace(waiting)!.Value.EstimatedWait);
    }

    [Fact]
    public void EstimateWait_ForTheNextArrival_IsThePlaceItWouldGet()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        Measure(h, "gpu");
        h.Admit("a");
        h.Admit("b");
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var estimate = h.Scheduler.EstimateWait("m");
        var next = h.Admit("c");

        Assert.Equal(h.Scheduler.GetPlace(next)!.Value.EstimatedWait, estimate);
        Assert.Null(h.Scheduler.EstimateWait("unknown-model"));
    }

    private static void Measure(SchedulerHarness h, string backend)
    {
        var lease = LeaseOf(h.Admit("measure"));
        Assert.Equal(backend, lease.Backend);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        lease.MarkFirstToken();
        h.Time.Advance(TimeSpan.FromSeconds(9));
        lease.Complete(10, 901);
    }

    private static void AssertClose(TimeSpan expected, TimeSpan actual) =>
        Assert.InRange(actual, expected - Tolerance, expected + Tolerance);
}
