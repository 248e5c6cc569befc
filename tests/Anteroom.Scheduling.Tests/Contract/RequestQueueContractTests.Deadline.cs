using System.Runtime.CompilerServices;

namespace Anteroom.Scheduling.Tests.Contract;

// deadlines
public abstract partial class RequestQueueContractTests
{
    // A quick prior (200 ms per request) so that waits of a few seconds are admitted.
    private static SchedulerOptions QuickOptions(TimeSpan? maxWait = null) => new()
    {
        MaxWait = maxWait ?? TimeSpan.FromMinutes(10),
        Prior = new ServicePrior { TimeToFirstToken = TimeSpan.FromMilliseconds(100), TokensPerSecond = 1000, OutputTokens = 100 },
    };

    [Fact]
    public async Task Timeout_AfterTheDeadline_EndsWaitingTicketTimedOut()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(waiting)));
        var dispatch = await h.EndOfWaitAsync(waiting);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.TimedOut, dispatch.Outcome);
        Assert.Equal(1, (await h.SnapshotAsync()).TimedOut);
    }

    [Fact]
    public async Task Timeout_BeforeTheDeadline_KeepsTheTicketWaiting()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(5) - TimeSpan.FromTicks(1));

        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(waiting)));
    }

    [Fact]
    public async Task Timeout_WhenRequestedWaitExceedsSchedulersMaxWait_UsesSchedulersMaxWait()
    {
        await using var h = Harness(QuickOptions(maxWait: TimeSpan.FromSeconds(30)), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b", maxWait: TimeSpan.FromHours(1));

        Assert.Equal(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), waiting.Deadline);
        h.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(waiting)));
    }

    [Fact]
    public async Task Timeout_WithSeveralDeadlines_FiresEachAtItsOwnTime()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var late = await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(20));
        var early = await h.AdmitAsync("c", maxWait: TimeSpan.FromSeconds(5));
        var middle = await h.AdmitAsync("d", maxWait: TimeSpan.FromSeconds(10));

        h.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal([TicketState.Waiting, TicketState.Ended, TicketState.Waiting], new[] { (await h.StateOfAsync(late)), (await h.StateOfAsync(early)), (await h.StateOfAsync(middle)) });

        h.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(middle)));
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(late)));

        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(late)));
    }

    [Fact]
    public async Task Timeout_InOneLongAdvance_EndsEveryTicketPastItsDeadline()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        var waiting = new List<Ticket>();
        for (int i = 1; i <= 5; i++)
        {
            waiting.Add(await h.AdmitAsync($"u{i}", maxWait: TimeSpan.FromSeconds(i)));
        }


        h.Time.Advance(TimeSpan.FromMinutes(1));

        Assert.All(await h.OutcomesOfAsync(waiting), o => Assert.Equal(TicketOutcome.TimedOut, o));
        Assert.Equal(0, (await h.SnapshotAsync()).Waiting);
    }

    [Fact]
    public async Task Timeout_AfterEarliestDeadlinesTicketLeftTheQueue_StillFiresTheNext()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        var running = await h.AdmitAsync("a");
        var first = await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(5));
        var cancelled = await h.AdmitAsync("c", maxWait: TimeSpan.FromSeconds(6));
        var next = await h.AdmitAsync("d", maxWait: TimeSpan.FromSeconds(8));

        (await h.LeaseOfAsync(running)).Complete(0, 100);
        await h.Queue.CancelAsync(cancelled.Id);
        h.Time.Advance(TimeSpan.FromSeconds(8));

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(first)));
        Assert.Equal(TicketOutcome.Cancelled, (await h.OutcomeOfAsync(cancelled)));
        Assert.Equal(TicketOutcome.TimedOut, (await h.OutcomeOfAsync(next)));
    }

    [Fact]
    public async Task Timeout_WhenTheTicketRunsBeforeItsDeadline_NeverEndsIt()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        var running = await h.AdmitAsync("a");
        var waiting = await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(5));

        h.Time.Advance(TimeSpan.FromSeconds(1));
        (await h.LeaseOfAsync(running)).Complete(0, 100);
        h.Time.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(waiting)));
        Assert.Equal(0, (await h.SnapshotAsync()).TimedOut);
    }

    [Fact]
    public async Task Timeout_OfAWaitingTicket_FreesItsPlaceForTheTicketsBehind()
    {
        await using var h = Harness(QuickOptions(), Backend("gpu", 1, "m"));
        await h.AdmitAsync("a");
        await h.AdmitAsync("b", maxWait: TimeSpan.FromSeconds(5));
        var behind = await h.AdmitAsync("c");

        h.Time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(1, await h.PositionOfAsync(behind));
    }
}
