
namespace Anteroom.Scheduling.Tests.Contract;

// estimates
public abstract partial class RequestQueueContractTests
{
    // 1 s to the first token, then 900 more tokens in 9 s: 100 tokens/s, 901 tokens, 10.01 s in all.
    private static readonly TimeSpan MeasuredService = TimeSpan.FromMilliseconds(1000 + (1000.0 * 901 / 100));

    [Fact]
    public async Task GetPlace_BeforeAnyMeasurement_EstimatesFromThePrior()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b");

        AssertClose(PriorServiceTime, (await h.PlaceOfAsync(waiting))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task GetPlace_AfterMeasuredCompletions_EstimatesFromMeasuredServiceTimeAndSlots()
    {
        await using var h = Harness(Backend("gpu", 1, "m"));
        await Measure(h, "gpu");
        await h.AdmitAsync("a");
        var waiting = new[] { await h.AdmitAsync("b"), await h.AdmitAsync("c"), await h.AdmitAsync("d") };

        h.Time.Advance(TimeSpan.FromSeconds(4));

        // The running ticket has about 6 s left; two whole services go before the third in line.
        var remaining = MeasuredService - TimeSpan.FromSeconds(4);
        AssertClose(remaining, (await h.PlaceOfAsync(waiting[0]))!.Value.EstimatedWait);
        AssertClose(remaining + MeasuredService, (await h.PlaceOfAsync(waiting[1]))!.Value.EstimatedWait);
        AssertClose(remaining + (2 * MeasuredService), (await h.PlaceOfAsync(waiting[2]))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task GetPlace_WithTwoSlots_CountsRoundsOfTwoDispatches()
    {
        await using var h = Harness(Backend("gpu", 2, "m"));
        await Measure(h, "gpu");
        await h.AdmitAsync("a");
        h.Time.Advance(TimeSpan.FromSeconds(2));
        await h.AdmitAsync("b");
        var waiting = new[] { await h.AdmitAsync("c"), await h.AdmitAsync("d"), await h.AdmitAsync("e") };

        // Slots free at 8.01 s (a) and 10.01 s (b); the third in line waits for a's slot to serve c first.
        var first = MeasuredService - TimeSpan.FromSeconds(2);
        AssertClose(first, (await h.PlaceOfAsync(waiting[0]))!.Value.EstimatedWait);
        AssertClose(MeasuredService, (await h.PlaceOfAsync(waiting[1]))!.Value.EstimatedWait);
        AssertClose(first + MeasuredService, (await h.PlaceOfAsync(waiting[2]))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task GetPlace_WhenRunningTicketOverruns_EstimatesItsSlotFreeNow()
    {
        await using var h = Harness(Backend("gpu", 1, "m"));
        await Measure(h, "gpu");
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b");

        h.Time.Advance(MeasuredService * 2);

        Assert.Equal(TimeSpan.Zero, (await h.PlaceOfAsync(waiting))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task GetPlace_WithMaxOutputTokens_ExpectsTheRunningTicketToEndSooner()
    {
        await using var h = Harness(Backend("gpu", 1, "m"));
        await Measure(h, "gpu");
        await h.AdmitAsync("a", maxOutputTokens: 101);
        var waiting = await h.AdmitAsync("b");

        // 1 s to the first token and 101 tokens at 100/s.
        AssertClose(TimeSpan.FromMilliseconds(2010), (await h.PlaceOfAsync(waiting))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task Snapshot_AfterMeasuredCompletions_ReportsTheModelsServiceTime()
    {
        await using var h = Harness(Backend("gpu", 1, "m"));

        await Measure(h, "gpu");

        var model = Assert.Single((await h.SnapshotAsync()).Models);
        AssertClose(MeasuredService, model.EstimatedServiceTime);
    }

    [Fact]
    public async Task Estimate_AfterSlowerMeasurement_MovesPartWayTowardsIt()
    {
        var options = new SchedulerOptions { EstimateSmoothing = 0.5 };
        await using var h = Harness(options, Backend("gpu", 1, "m"));
        await Measure(h, "gpu");

        // A second run taking 3 s to its first token: the blended figure is 2 s.
        var lease = (await h.LeaseOfAsync(await h.AdmitAsync("x")));
        h.Time.Advance(TimeSpan.FromSeconds(3));
        lease.MarkFirstToken();
        h.Time.Advance(TimeSpan.FromSeconds(9));
        lease.Complete(0, 901);

        var model = Assert.Single((await h.SnapshotAsync()).Models);
        AssertClose(MeasuredService + TimeSpan.FromSeconds(1), model.EstimatedServiceTime);
    }

    [Fact]
    public async Task GetPlace_ForTicketRunningSinceBeforeTheFirstMeasurement_UsesWhatIsMeasuredNow()
    {
        await using var h = Harness(Backend("gpu", 2, "m"));
        var admittedOnThePrior = await h.AdmitAsync("early");
        await Measure(h, "gpu");
        await h.AdmitAsync("filler");
        var waiting = await h.AdmitAsync("b");

        // "early" ran 10 s already; by the measured 10.01 s service it is about to end, not 8.5 s of prior away.
        Assert.Equal(TicketState.Running, (await h.StateOfAsync(admittedOnThePrior)));
        AssertClose(MeasuredService - TimeSpan.FromSeconds(10), (await h.PlaceOfAsync(waiting))!.Value.EstimatedWait);
    }

    [Fact]
    public async Task EstimateWait_ForTheNextArrival_IsThePlaceItWouldGet()
    {
        await using var h = Harness(Backend("gpu", 1, "m"));
        await Measure(h, "gpu");
        await h.AdmitAsync("a");
        await h.AdmitAsync("b");
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var estimate = await h.EstimateWaitAsync("m");
        var next = await h.AdmitAsync("c");

        Assert.Equal((await h.PlaceOfAsync(next))!.Value.EstimatedWait, estimate);
        Assert.Null(await h.EstimateWaitAsync("unknown-model"));
    }

    private static async Task Measure(QueueHarness h, string backend)
    {
        var lease = (await h.LeaseOfAsync(await h.AdmitAsync("measure")));
        Assert.Equal(backend, lease.Backend);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        lease.MarkFirstToken();
        h.Time.Advance(TimeSpan.FromSeconds(9));
        lease.Complete(10, 901);
    }
}
