using CsCheck;

namespace Anteroom.Scheduling.Tests;

public sealed class TicketTreeTests
{
    [Fact]
    public void Rank_OfEachTicket_IsItsIndexInKeyOrder()
    {
        var tree = new TicketTree();
        var tickets = new[] { NewTicket(5, 1), NewTicket(1, 2), NewTicket(5, 3), NewTicket(3, 4) };
        foreach (var ticket in tickets)
        {
            tree.Add(ticket);
        }

        Assert.Equal([2, 0, 3, 1], tickets.Select(tree.Rank));
        Assert.Same(tickets[1], tree.Min);
        Assert.Equal(3, tree.CountBefore(5, 3));
        Assert.Equal(4, tree.CountBefore(5, 4));
    }

    [Fact]
    public void Rank_OfTicketNotInTree_Throws()
    {
        var tree = new TicketTree();
        tree.Add(NewTicket(1, 1));

        Assert.Throws<InvalidOperationException>(() => tree.Rank(NewTicket(2, 2)));
        Assert.False(tree.Remove(NewTicket(2, 2)));
    }

    [Fact]
    public void RandomAddsAndRemoves_MatchASortedList()
    {
        // Each operation: add a ticket with a tag from a small range (so ties are common), or remove one.
        var operations = Gen.Select(Gen.Bool, Gen.Int[0, 7], Gen.Int[0, 1000]).Array[1, 200];
        operations.Sample(ops =>
        {
            var tree = new TicketTree();
            var reference = new List<Ticket>();
            long sequence = 0;
            foreach (var (add, tag, pick) in ops)
            {
                if (add || reference.Count == 0)
                {
                    var ticket = NewTicket(tag, ++sequence);
                    tree.Add(ticket);
                    reference.Add(ticket);
                    reference.Sort((a, b) => a.CompareKey(b));
                }
                else
                {
                    var ticket = reference[pick % reference.Count];
                    Assert.True(tree.Remove(ticket));
                    reference.Remove(ticket);
                }

                Assert.Equal(reference.Count, tree.Count);
                Assert.Same(reference.FirstOrDefault(), tree.Min);
                Assert.Equal(reference, tree.InOrder(int.MaxValue));
                Assert.Equal(reference.Take(3), tree.InOrder(3));
                for (int i = 0; i < reference.Count; i++)
                {
                    Assert.Equal(i, tree.Rank(reference[i]));
                }

                Assert.Equal(reference.Count(t => t.Tag < tag || (t.Tag == tag && t.Sequence < sequence)), tree.CountBefore(tag, sequence));
            }
        }, iter: 500);
    }

    private static Ticket NewTicket(double tag, long sequence)
    {
        var request = new TicketRequest { Id = $"t{sequence}", Owner = "u", Model = "m" };
        return new Ticket(request, sequence, 0, 0, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch) { Tag = tag };
    }
}
