
namespace Anteroom.Scheduling.Tests.Contract;

// positions
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task GetPlace_ForWaitingTickets_NumbersThemFromOne()
    {
        await using var h = Harness();
        await h.AdmitAsync("a");
        var waiting = new[] { await h.AdmitAsync("b"), await h.AdmitAsync("c"), await h.AdmitAsync("d") };

        var places = (await h.PlacesOfAsync(waiting)).Select(p => p!.Value).ToList();

        Assert.Equal([1, 2, 3], places.Select(p => p.Position));
        Assert.All(places, p => Assert.Equal(3, p.QueueLength));
    }

    [Fact]
    public async Task GetPlace_AfterDispatch_CountsDown()
    {
        await using var h = Harness();
        var running = await h.AdmitAsync("a");
        var b = await h.AdmitAsync("b");
        var c = await h.AdmitAsync("c");
        var d = await h.AdmitAsync("d");

        (await h.LeaseOfAsync(running)).Complete(0, 256);

        Assert.Null((await h.PlaceOfAsync(b)));
        Assert.Equal(new WaitingPlace(1, 2, (await h.PlaceOfAsync(c))!.Value.EstimatedWait), (await h.PlaceOfAsync(c)));
        Assert.Equal(2, await h.PositionOfAsync(d));
    }

    [Fact]
    public async Task GetPlace_ForRunningOrEndedTicket_IsNull()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("a");

        Assert.Null((await h.PlaceOfAsync(ticket)));
        (await h.LeaseOfAsync(ticket)).Complete(0, 1);
        Assert.Null((await h.PlaceOfAsync(ticket)));
    }

    [Fact]
    public async Task GetPlace_CountsOnlyTicketsForTheSameModel()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        await h.AdmitManyAsync(4, "alice", "llama");
        await h.AdmitAsync("bob", "qwen");

        var qwen = await h.AdmitAsync("bob", "qwen");

        Assert.Equal(new WaitingPlace(1, 1, (await h.PlaceOfAsync(qwen))!.Value.EstimatedWait), (await h.PlaceOfAsync(qwen)));
    }

    [Fact]
    public async Task GetPlace_ForSoleWaitingTicket_NeverGrowsWhenOthersArrive()
    {
        await using var h = Harness();
        await h.AdmitManyAsync(2, "bob");
        await h.AdmitAsync("carol");
        var alice = await h.AdmitAsync("alice");
        int position = await h.PositionOfAsync(alice);

        foreach (var owner in new[] { "dave", "bob", "erin", "carol", "dave", "frank", "gold" })
        {
            await h.AdmitAsync(owner, weight: owner == "gold" ? 4 : 1);
            Assert.Equal(position, await h.PositionOfAsync(alice));
        }
    }

    [Fact]
    public async Task GetPlace_ForDebtorsSoleWaitingTicket_NeverGrowsWhenNewcomersArrive()
    {
        await using var h = Harness();
        var debtor = await h.AdmitManyAsync(3, "debtor");
        (await h.LeaseOfAsync(debtor[0])).Complete(0, 256);
        // The debtor's last ticket is tagged far ahead of the queue's virtual time; newcomers start at that time.
        Assert.Equal(1, await h.PositionOfAsync(debtor[2]));

        for (int i = 0; i < 5; i++)
        {
            await h.AdmitAsync($"newcomer-{i}");
            Assert.Equal(1, await h.PositionOfAsync(debtor[2]));
        }
    }

    [Fact]
    public async Task GetWaiting_ListsEachModelsQueueInDispatchOrderWithPositions()
    {
        await using var h = Harness(Backend("a", 1, "llama"), Backend("b", 1, "qwen"));
        var alice = await h.AdmitManyAsync(3, "alice", "llama");
        var bob = await h.AdmitAsync("bob", "llama");
        await h.AdmitAsync("carol", "qwen");
        var qwen = await h.AdmitAsync("carol", "qwen");

        var waiting = (await h.WaitingAsync());

        Assert.Equal(4, waiting.Count);
        var llamaListed = waiting.Where(w => w.Model == "llama").Select(w => (w.Id, w.Position));
        Assert.Equal([(bob.Id, 1), (alice[1].Id, 2), (alice[2].Id, 3)], llamaListed);
        Assert.Equal([(qwen.Id, 1)], waiting.Where(w => w.Model == "qwen").Select(w => (w.Id, w.Position)));
    }

    [Fact]
    public async Task GetWaiting_WithLimit_ListsAtMostThatManyPerModel()
    {
        await using var h = Harness();
        await h.AdmitManyAsync(10, "alice");

        var waiting = (await h.WaitingAsync(limitPerModel: 3));

        Assert.Equal([1, 2, 3], waiting.Select(w => w.Position));
    }
}
