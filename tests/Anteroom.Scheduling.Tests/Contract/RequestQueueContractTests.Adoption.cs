namespace Anteroom.Scheduling.Tests.Contract;

// adoption: what every queue answers when nothing is left to adopt (the Redis replica tests adopt from a dead replica)
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task Adopt_AnUnknownId_ReturnsNull()
    {
        await using var h = Harness();
        await h.AdmitAsync("alice");

        Assert.Null(await h.Queue.AdoptAsync("no-such-ticket"));
    }

    [Fact]
    public async Task Adopt_ATicketItsHolderStillHolds_ReturnsNull_AndLeavesItAsItWas()
    {
        await using var h = Harness();
        var running = await h.TryAdmitAsync(new TicketRequest { Id = "run", Owner = "alice", Model = "m", HolderGrace = TimeSpan.FromMinutes(1) });
        var waiting = await h.TryAdmitAsync(new TicketRequest { Id = "wait", Owner = "bob", Model = "m", HolderGrace = TimeSpan.FromMinutes(1) });
        Assert.True(running.IsAdmitted && waiting.IsAdmitted);

        Assert.Null(await h.Queue.AdoptAsync("run"));
        Assert.Null(await h.Queue.AdoptAsync("wait"));

        var lease = await h.LeaseOfAsync(running.Ticket);
        Assert.Equal(1, await h.PositionOfAsync(waiting.Ticket));
        lease.Complete(0, 10);
        Assert.Same(waiting.Ticket, (await h.LeaseOfAsync(waiting.Ticket)).Ticket);
    }

    [Fact]
    public async Task Adopt_AnEndedTicket_ReturnsNull()
    {
        await using var h = Harness();
        var ticket = await h.AdmitAsync("alice");
        (await h.LeaseOfAsync(ticket)).Complete(0, 10);
        await h.SettleAsync();

        Assert.Null(await h.Queue.AdoptAsync(ticket.Id));
    }

    [Fact]
    public async Task Admit_WithNegativeHolderGrace_ThrowsForMisuse()
    {
        await using var h = Harness();

        var thrown = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            h.TryAdmitAsync(new TicketRequest { Id = "a", Owner = "alice", Model = "m", HolderGrace = TimeSpan.FromSeconds(-1) }));
        Assert.Equal(nameof(TicketRequest.HolderGrace), thrown.ParamName);
    }
}
