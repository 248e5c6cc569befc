using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class PositionTests
{
    [Fact]
    public void GetPlace_InAQueueOfManyLeaves_MatchesTheListAfterCancelsAndDispatches()
    {
        // Enough tickets for the queue's tree to have branches over many leaves, then cancels that empty leaves
        // across it and dispatches that take its head: positions, the listing and the dispatch order must agree.
        var options = new SchedulerOptions { MaxQueueLength = 100_000, MaxWaitingPerUser = 10_000, MaxInFlightPerUser = 10_000, MaxWait = TimeSpan.FromDays(30) };
        using var h = new SchedulerHarness(options);
        var random = new Random(11);
        var tickets = Enumerable.Range(0, 20_000).Select(i => h.Admit($"user{i % 37}", promptTokens: random.Next(0, 500))).ToList();
        foreach (var ticket in tickets.Where(_ => random.Next(3) == 0))
        {
            h.Scheduler.Cancel(ticket);
        }

        var ran = h.RunInOrder(2_000);

        var waiting = h.Scheduler.GetWaiting().Select(w => (Ticket: (SchedulerTicket)w.Ticket, w.Position)).ToList();
        Assert.Equal(waiting.Select(w => w.Ticket).OrderBy(t => t, Comparer<SchedulerTicket>.Create((a, b) => a.CompareKey(b))), waiting.Select(w => w.Ticket));
        Assert.True(ran.Zip(ran.Skip(1)).Count(pair => pair.First.CompareKey(pair.Second) > 0) <= 1, "dispatch left key order more than once");
        Assert.True(ran[^1].CompareKey(waiting[0].Ticket) < 0);
        foreach (var entry in waiting.Where((_, i) => i % 97 == 0))
        {
            Assert.Equal(entry.Position, h.PositionOf(entry.Ticket));
        }

        Assert.Equal(tickets.Count(t => t.State == TicketState.Waiting), waiting.Count);
    }
}
