using CsCheck;

namespace Anteroom.Scheduling.Tests;

public sealed class LiveTicketsTests
{
    [Fact]
    public void Find_AfterAddAndRemove_SeesOnlyLiveTickets()
    {
        var live = new LiveTickets();
        var a = NewTicket("a");
        var b = NewTicket("b");
        live.Add(a);
        live.Add(b);

        Assert.Same(a, live.Find("a"));
        Assert.True(live.Remove(a));
        Assert.Null(live.Find("a"));
        Assert.False(live.Remove(a));
        Assert.Same(b, live.Find("b"));
        Assert.Equal(1, live.Count);
    }

    [Fact]
    public void Remove_OfAnotherTicketWithTheSameId_KeepsTheLiveOne()
    {
        var live = new LiveTickets();
        var held = NewTicket("same");
        live.Add(held);

        Assert.False(live.Remove(NewTicket("same")));
        Assert.Same(held, live.Find("same"));
    }

    [Fact]
    public void RandomAddsAndRemoves_MatchADictionary()
    {
        // A few dozen ids in a table of a few dozen slots: long probe runs, wrap-around at the end of the slots,
        // growth, and removals from the middle of runs that must shift later entries back.
        var operations = Gen.Select(Gen.Bool, Gen.Int[0, 60]).Array[1, 400];
        operations.Sample(ops =>
        {
            var live = new LiveTickets();
            var reference = new Dictionary<string, SchedulerTicket>();
            foreach (var (add, pick) in ops)
            {
                string id = $"id{pick}";
                if (add && !reference.ContainsKey(id))
                {
                    var ticket = NewTicket(id);
                    live.Add(ticket);
                    reference[id] = ticket;
                }
                else if (reference.Remove(id, out var ticket))
                {
                    Assert.True(live.Remove(ticket));
                }

                Assert.Equal(reference.Count, live.Count);
            }

            for (int pick = 0; pick <= 60; pick++)
            {
                string id = $"id{pick}";
                Assert.Same(reference.GetValueOrDefault(id), live.Find(id));
            }
        }, iter: 500);
    }

    private static SchedulerTicket NewTicket(string id) =>
        new(new TicketRequest { Id = id, Owner = "u", Model = "m" }, 1, 0, 0, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);
}
