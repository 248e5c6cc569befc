
namespace Anteroom.Scheduling.Tests.Contract;

// fair share
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task Dispatch_WhenSlotFrees_RunsOldestTicketOfLeastServedUser()
    {
        await using var h = Harness();
        var flood = await h.AdmitManyAsync(3, "flooder");
        var first = await h.AdmitAsync("alice");
        var second = await h.AdmitAsync("alice");

        var order = await h.RunInOrderAsync(3);

        Assert.Equal([flood[0], first, flood[1]], order);
        Assert.Equal(TicketState.Waiting, (await h.StateOfAsync(second)));
    }

    [Fact]
    public async Task Admit_BehindAFlood_RunsNewcomerAfterAtMostOneFloodTicket()
    {
        await using var h = Harness();
        var flood = await h.AdmitManyAsync(50, "flooder");

        var newcomer = await h.AdmitAsync("newcomer");

        Assert.Equal(1, await h.PositionOfAsync(newcomer));
        var order = await h.RunInOrderAsync(2);
        Assert.Equal([flood[0], newcomer], order);
    }

    [Fact]
    public async Task Dispatch_WithWeights_GivesWeightFourUserFourTimesTheShare()
    {
        await using var h = Harness(new SchedulerOptions { MaxWait = TimeSpan.FromHours(1) }, Backend("gpu", 1, "m"));
        await h.AdmitManyAsync(50, "gold", weight: 4);
        await h.AdmitManyAsync(50, "free", weight: 1);

        // Both stay backlogged throughout the first 50 dispatches.
        var order = await h.RunInOrderAsync(50);

        int gold = order.Count(t => t.Owner == "gold");
        int free = order.Count(t => t.Owner == "free");
        Assert.Equal(50, gold + free);
        Assert.InRange(gold, 39, 41);
        Assert.InRange(free, 9, 11);
    }

    [Fact]
    public async Task Dispatch_WithEqualWeights_AlternatesBetweenBackloggedUsers()
    {
        await using var h = Harness();
        await h.AdmitManyAsync(10, "alice");
        await h.AdmitManyAsync(10, "bob");

        var owners = (await h.RunInOrderAsync(20)).Select(t => t.Owner).ToList();

        // Alice's first ticket was already running when Bob arrived; after it the two alternate.
        for (int i = 1; i + 1 < owners.Count; i += 2)
        {
            Assert.NotEqual(owners[i], owners[i + 1]);
        }
    }

    [Fact]
    public async Task Complete_WhenAnswerIsLongerThanEstimated_ChargesOwnersLaterTickets()
    {
        await using var h = Harness();
        var heavy = await h.AdmitManyAsync(3, "heavy");

        // Ten times the estimated 256 output tokens: the owner now owes nine more requests' worth.
        (await h.LeaseOfAsync(heavy[0])).Complete(0, 2560);
        var late = await h.AdmitAsync("heavy");
        for (int i = 0; i < 5; i++)
        {
            // Capped at the old estimate, so that what the scheduler learnt from the long answer does not matter here.
            await h.AdmitAsync("light", maxOutputTokens: 256);
        }

        var order = await h.RunInOrderAsync();
        Assert.Equal(8, order.Count);
        Assert.Equal(late, order[^1]);
    }

    [Fact]
    public async Task Admit_AfterIdlePeriod_DoesNotBankCredit()
    {
        await using var h = Harness();
        await h.AdmitManyAsync(6, "busy");
        await h.RunInOrderAsync(4);

        // "idle" was absent while "busy" was served: it starts level with "busy" instead of running its backlog first.
        await h.AdmitManyAsync(4, "idle");

        var owners = (await h.RunInOrderAsync(6)).Select(t => t.Owner);
        Assert.Equal(["busy", "idle", "busy", "idle", "busy", "idle"], owners);
    }

    [Fact]
    public async Task Admit_ForAnotherModelInBetween_KeepsArrivalOrderWithinOwnerAndModel()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var llama = await h.AdmitManyAsync(3, "alice", "llama");
        // A tiny request on a model with an idle clock must not let Alice's next llama request overtake her older ones.
        await h.AdmitAsync("alice", "qwen", maxOutputTokens: 1);

        var later = await h.AdmitAsync("alice", "llama");

        Assert.True(await h.PositionOfAsync(llama[1]) < await h.PositionOfAsync(later));
        Assert.True(await h.PositionOfAsync(llama[2]) < await h.PositionOfAsync(later));
        Assert.Equal([llama[0], llama[1], llama[2], later], (await h.RunInOrderAsync()).Where(t => t.Model == "llama"));
    }

    [Fact]
    public async Task Admit_InterleavedWithTinyRequestsForAnotherModel_DoesNotOvertakeOtherUsers()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var victim = await h.AdmitManyAsync(3, "victim", "llama");

        for (int i = 0; i < 5; i++)
        {
            (await h.LeaseOfAsync(await h.AdmitAsync("flooder", "qwen", maxOutputTokens: 1))).Complete(0, 1);
            await h.AdmitAsync("flooder", "llama");
        }

        // A newcomer on llama, the flooder gets one ticket in first; after that the two alternate.
        Assert.Equal(2, await h.PositionOfAsync(victim[1]));
        Assert.Equal(4, await h.PositionOfAsync(victim[2]));
    }

    [Fact]
    public async Task Dispatch_UnderFifoPolicy_RunsTicketsInStrictArrivalOrder()
    {
        await using var h = Harness(new SchedulerOptions { Policy = SchedulingPolicy.Fifo }, Backend("gpu", 1, "m"));
        var tickets = new List<Ticket>();
        tickets.AddRange(await h.AdmitManyAsync(5, "flooder"));
        tickets.Add(await h.AdmitAsync("newcomer"));
        tickets.Add(await h.AdmitAsync("gold", weight: 4));
        tickets.Add(await h.AdmitAsync("flooder"));

        Assert.Equal(SchedulingPolicy.Fifo, h.Queue.Policy);
        Assert.Equal(tickets, await h.RunInOrderAsync());
    }

    [Fact]
    public async Task Dispatch_UnderFifoPolicy_PositionIsArrivalRank()
    {
        await using var h = Harness(new SchedulerOptions { Policy = SchedulingPolicy.Fifo }, Backend("gpu", 1, "m"));
        await h.AdmitManyAsync(4, "flooder");

        var newcomer = await h.AdmitAsync("newcomer");

        Assert.Equal(4, await h.PositionOfAsync(newcomer));
    }
}
