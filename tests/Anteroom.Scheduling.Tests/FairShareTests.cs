using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class FairShareTests
{
    [Fact]
    public void Dispatch_WhenSlotFrees_RunsOldestTicketOfLeastServedUser()
    {
        using var h = new SchedulerHarness();
        var flood = h.AdmitMany(3, "flooder");
        var first = h.Admit("alice");
        var second = h.Admit("alice");

        var order = h.RunInOrder(3);

        Assert.Equal([flood[0], first, flood[1]], order);
        Assert.Equal(TicketState.Waiting, second.State);
    }

    [Fact]
    public void Admit_BehindAFlood_RunsNewcomerAfterAtMostOneFloodTicket()
    {
        using var h = new SchedulerHarness();
        var flood = h.AdmitMany(50, "flooder");

        var newcomer = h.Admit("newcomer");

        Assert.Equal(1, h.PositionOf(newcomer));
        var order = h.RunInOrder(2);
        Assert.Equal([flood[0], newcomer], order);
    }

    [Fact]
    public void Dispatch_WithWeights_GivesWeightFourUserFourTimesTheShare()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { MaxWait = TimeSpan.FromHours(1) }, Backend("gpu", 1, "m"));
        h.AdmitMany(50, "gold", weight: 4);
        h.AdmitMany(50, "free", weight: 1);

        // Both stay backlogged throughout the first 50 dispatches.
        var order = h.RunInOrder(50);

        int gold = order.Count(t => t.Owner == "gold");
        int free = order.Count(t => t.Owner == "free");
        Assert.Equal(50, gold + free);
        Assert.InRange(gold, 39, 41);
        Assert.InRange(free, 9, 11);
    }

    [Fact]
    public void Dispatch_WithEqualWeights_AlternatesBetweenBackloggedUsers()
    {
        using var h = new SchedulerHarness();
        h.AdmitMany(10, "alice");
        h.AdmitMany(10, "bob");

        var owners = h.RunInOrder(20).Select(t => t.Owner).ToList();

        // Alice's first ticket was already running when Bob arrived; after it the two alternate.
        for (int i = 1; i + 1 < owners.Count; i += 2)
        {
            Assert.NotEqual(owners[i], owners[i + 1]);
        }
    }

    [Fact]
    public void Complete_WhenAnswerIsLongerThanEstimated_ChargesOwnersLaterTickets()
    {
        using var h = new SchedulerHarness();
        var heavy = h.AdmitMany(3, "heavy");

        // Ten times the estimated 256 output tokens: the owner now owes nine more requests' worth.
        LeaseOf(heavy[0]).Complete(0, 2560);
        var late = h.Admit("heavy");
        for (int i = 0; i < 5; i++)
        {
            // Capped at the old estimate, so that what the scheduler learnt from the long answer does not matter here.
            h.Admit("light", maxOutputTokens: 256);
        }

        var order = h.RunInOrder();
        Assert.Equal(8, order.Count);
        Assert.Equal(late, order[^1]);
    }

    [Fact]
    public void Admit_AfterIdlePeriod_DoesNotBankCredit()
    {
        using var h = new SchedulerHarness();
        h.AdmitMany(6, "busy");
        h.RunInOrder(4);

        // "idle" was absent while "busy" was served: it starts level with "busy" instead of running its backlog first.
        h.AdmitMany(4, "idle");

        var owners = h.RunInOrder(6).Select(t => t.Owner);
        Assert.Equal(["busy", "idle", "busy", "idle", "busy", "idle"], owners);
    }

    [Fact]
    public void Admit_ForAnotherModelInBetween_KeepsArrivalOrderWithinOwnerAndModel()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var llama = h.AdmitMany(3, "alice", "llama");
        // A tiny request on a model with an idle clock must not let Alice's next llama request overtake her older ones.
        h.Admit("alice", "qwen", maxOutputTokens: 1);

        var later = h.Admit("alice", "llama");

        Assert.True(h.PositionOf(llama[1]) < h.PositionOf(later));
        Assert.True(h.PositionOf(llama[2]) < h.PositionOf(later));
        Assert.Equal([llama[0], llama[1], llama[2], later], h.RunInOrder().Where(t => t.Model == "llama"));
    }

    [Fact]
    public void Admit_InterleavedWithTinyRequestsForAnotherModel_DoesNotOvertakeOtherUsers()
    {
        using var h = new SchedulerHarness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var victim = h.AdmitMany(3, "victim", "llama");

        for (int i = 0; i < 5; i++)
        {
            LeaseOf(h.Admit("flooder", "qwen", maxOutputTokens: 1)).Complete(0, 1);
            h.Admit("flooder", "llama");
        }

        // A newcomer on llama, the flooder gets one ticket in first; after that the two alternate.
        Assert.Equal(2, h.PositionOf(victim[1]));
        Assert.Equal(4, h.PositionOf(victim[2]));
    }

    [Fact]
    public void Dispatch_UnderFifoPolicy_RunsTicketsInStrictArrivalOrder()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { Policy = SchedulingPolicy.Fifo }, Backend("gpu", 1, "m"));
        var tickets = new List<Ticket>();
        tickets.AddRange(h.AdmitMany(5, "flooder"));
        tickets.Add(h.Admit("newcomer"));
        tickets.Add(h.Admit("gold", weight: 4));
        tickets.Add(h.Admit("flooder"));

        Assert.Equal(SchedulingPolicy.Fifo, h.Scheduler.Policy);
        Assert.Equal(tickets, h.RunInOrder());
    }

    [Fact]
    public void Dispatch_UnderFifoPolicy_PositionIsArrivalRank()
    {
        using var h = new SchedulerHarness(new SchedulerOptions { Policy = SchedulingPolicy.Fifo }, Backend("gpu", 1, "m"));
        h.AdmitMany(4, "flooder");

        var newcomer = h.Admit("newcomer");

        Assert.Equal(4, h.PositionOf(newcomer));
    }
}
