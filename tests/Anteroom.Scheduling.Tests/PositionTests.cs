using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class PositionTests
{
    [Fact]
    public void GetPlace_ForWaitingTickets_NumbersThemFromOne()
    {
        using var h = new SchedulerHarness();
        h.Admit("a");
        var waiting = new[] { h.Admit("b"), h.Admit("c"), h.Admit("d") };

        var places = waiting.Select(t => h.Scheduler.GetPlace(t)!.Value).ToList();

        Assert.Equal([1, 2, 3], places.Select(p => p.Position));
        Assert.All(places, p => Assert.Equal(3, p.QueueLength));
    }

    [Fact]
    public void GetPlace_AfterDispatch_CountsDown()
    {
        using var h = new SchedulerHarness();
        var running = h.Admit("a");
        var b = h.Admit("b");
        var c = h.Admit("c");
        var d = h.Admit("d");

        LeaseOf(running).Complete(0, 256);

        Assert.Null(h.Scheduler.GetPlace(b));
        Assert.Equal(new WaitingPlace(1, 2, h.Scheduler.GetPlace(c)!.Value.EstimatedWait), h.Scheduler.GetPlace(c));
        Assert.Equal(2, h.PositionOf(d));
    }

    [Fact]
    public void GetPlace_ForRunningOrEndedTicket_IsNull()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("a");

        Assert.Null(h.Scheduler.GetPlace(ticket));
        LeaseOf(ticket).Complete(0, 1);
        Assert.Null(h.Scheduler.GetPlace(ticket));
    }

    [Fact]
    public void GetPlace_CountsOnlyTicketsForTheSameModel()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        h.AdmitMany(4, "alice", "llama");
        h.Admit("bob", "qwen");

        var qwen = h.Admit("bob", "qwen");

        Assert.Equal(new WaitingPlace(1, 1, h.Scheduler.GetPlace(qwen)!.Value.EstimatedWait), h.Scheduler.GetPlace(qwen));
    }

    [Fact]
    public void GetPlace_ForSoleWaitingTicket_NeverGrowsWhenOthersArrive()
    {
        using var h = new SchedulerHarness();
        h.AdmitMany(2, "bob");
        h.Admit("carol");
        var alice = h.Admit("alice");
        int position = h.PositionOf(alice);

        foreach (var owner in new[] { "dave", "bob", "erin", "carol", "dave", "frank", "gold" })
        {
            h.Admit(owner, weight: owner == "gold" ? 4 : 1);
            Assert.Equal(position, h.PositionOf(alice));
        }
    }

    [Fact]
    public void GetPlace_ForDebtorsSoleWaitingTicket_NeverGrowsWhenNewcomersArrive()
    {
        using var h = new SchedulerHarness();
        var debtor = h.AdmitMany(3, "debtor");
        LeaseOf(debtor[0]).Complete(0, 256);
        // The debtor's last ticket is tagged far ahead of the queue's virtual time; newcomers start at that time.
        Assert.Equal(1, h.PositionOf(debtor[2]));

        for (int i = 0; i < 5; i++)
        {
            h.Admit($"newcomer-{i}");
            Assert.Equal(1, h.PositionOf(debtor[2]));
        }
    }

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

    [Fact]
    public void GetWaiting_ListsEachModelsQueueInDispatchOrderWithPositions()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var alice = h.AdmitMany(3, "alice", "llama");
        var bob = h.Admit("bob", "llama");
        h.Admit("carol", "qwen");
        var qwen = h.Admit("carol", "qwen");

        var waiting = h.Scheduler.GetWaiting();

        Assert.Equal(4, waiting.Count);
        var llamaListed = waiting.Where(w => w.Ticket.Model == "llama").Select(w => (w.Ticket, w.Position));
        Assert.Equal([(bob, 1), (alice[1], 2), (alice[2], 3)], llamaListed);
        Assert.Equal([(qwen, 1)], waiting.Where(w => w.Ticket.Model == "qwen").Select(w => (w.Ticket, w.Position)));
    }

    [Fact]
    public void GetWaiting_WithLimit_ListsAtMostThatManyPerModel()
    {
        using var h = new SchedulerHarness();
        h.AdmitMany(10, "alice");

        var waiting = h.Scheduler.GetWaiting(limitPerModel: 3);

        Assert.Equal([1, 2, 3], waiting.Select(w => w.Position));
    }
}
