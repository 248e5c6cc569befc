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
    public void Remove_OfAnotherTicketWithTheSameKey_LeavesTheTreeAlone()
    {
        var tree = new TicketTree(4, 4);
        var held = Enumerable.Range(1, 50).Select(i => NewTicket(i % 3, i)).ToList();
        held.ForEach(tree.Add);

        var impostor = NewTicket(held[20].Tag, held[20].Sequence);

        Assert.False(tree.Remove(impostor));
        Assert.Throws<InvalidOperationException>(() => tree.Rank(impostor));
        Assert.Equal(50, tree.Count);
        tree.CheckInvariants();
    }

    [Fact]
    public void EmptyTree_HasNoHeadAndNothingBefore()
    {
        var tree = new TicketTree(4, 4);

        Assert.Null(tree.Min);
        Assert.Null(tree.Max);
        Assert.Equal(0, tree.Count);
        Assert.Equal(0, tree.CountBefore(1, 1));
        Assert.Empty(tree.InOrder(10));
    }

    [Fact]
    public void EqualTags_AreOrderedBySequence_AcrossLeaves()
    {
        // One tag for all, inserted in shuffled sequence order: the order must come from the sequences alone.
        var tree = new TicketTree(4, 4);
        var tickets = Enumerable.Range(1, 200).Select(i => NewTicket(7, i)).ToList();
        foreach (var ticket in tickets.OrderBy(t => (t.Sequence * 7919) % 211))
        {
            tree.Add(ticket);
        }

        tree.CheckInvariants();
        Assert.True(tree.Height >= 3);
        Assert.Equal(tickets, tree.InOrder(int.MaxValue));
        for (int i = 0; i < tickets.Count; i++)
        {
            Assert.Equal(i, tree.Rank(tickets[i]));
            Assert.Equal(i, tree.CountBefore(7, i + 1));
        }
    }

    [Fact]
    public void AscendingAdds_SplitEveryLevel_AndTakingTheHeadEmptiesItAgain()
    {
        // Arrivals at the back and dispatches from the front, as a busy queue sees them.
        var tree = new TicketTree(4, 4);
        var tickets = Enumerable.Range(1, 500).Select(i => NewTicket(i / 3, i)).ToList();
        int peakHeight = 0;
        foreach (var ticket in tickets)
        {
            tree.Add(ticket);
            tree.CheckInvariants();
            peakHeight = Math.Max(peakHeight, tree.Height);
        }

        Assert.True(peakHeight >= 4, $"height {peakHeight}");
        foreach (var ticket in tickets)
        {
            Assert.Same(ticket, tree.Min);
            Assert.Equal(0, tree.Rank(ticket));
            Assert.True(tree.Remove(ticket));
            tree.CheckInvariants();
        }

        Assert.Equal(0, tree.Height);
        Assert.Null(tree.Min);
        Assert.Equal(0, tree.Count);
    }

    [Fact]
    public void DescendingAdds_AndRemovalsFromTheBack_KeepTheTreeValid()
    {
        // Every add lands at the front (as requeued tickets do); every removal takes the last entry of the last leaf.
        var tree = new TicketTree(4, 4);
        var tickets = Enumerable.Range(1, 300).Select(i => NewTicket(-i, i)).ToList();
        foreach (var ticket in tickets)
        {
            tree.Add(ticket);
            Assert.Same(ticket, tree.Min);
            tree.CheckInvariants();
        }

        foreach (var ticket in tickets)
        {
            Assert.Equal(tree.Count - 1, tree.Rank(ticket));
            Assert.True(tree.Remove(ticket));
            tree.CheckInvariants();
        }

        Assert.Equal(0, tree.Count);
        Assert.Equal(0, tree.Height);
    }

    [Fact]
    public void RemovingEveryEntryOfOneLeaf_MergesItAway()
    {
        var tree = new TicketTree(8, 4);
        var tickets = Enumerable.Range(1, 400).Select(i => NewTicket(i, i)).ToList();
        tickets.ForEach(tree.Add);
        var reference = new List<SchedulerTicket>(tickets);

        // A run of neighbours from the middle: whole leaves empty out, one entry at a time.
        foreach (var ticket in tickets.Skip(150).Take(120))
        {
            Assert.True(tree.Remove(ticket));
            reference.Remove(ticket);
            tree.CheckInvariants();
        }

        Assert.Equal(reference, tree.InOrder(int.MaxValue));
        Assert.Equal(150, tree.Rank(tickets[270]));
        Assert.Equal(150, tree.CountBefore(200, 200));
    }

    [Fact]
    public void DefaultTree_WithManyTickets_MatchesASortedList()
    {
        // Full-size nodes over several levels: 20,000 adds with many tied tags, then removals in random order.
        var random = new Random(7);
        var tree = new TicketTree();
        var reference = new List<SchedulerTicket>();
        for (int i = 1; i <= 20_000; i++)
        {
            var ticket = NewTicket(random.Next(500), i);
            tree.Add(ticket);
            reference.Add(ticket);
        }

        reference.Sort((a, b) => a.CompareKey(b));
        tree.CheckInvariants();
        Assert.True(tree.Height >= 2);
        Assert.Equal(reference, tree.InOrder(int.MaxValue));
        for (int i = 0; i < reference.Count; i += 97)
        {
            Assert.Equal(i, tree.Rank(reference[i]));
        }

        var order = reference.OrderBy(_ => random.Next()).ToList();
        for (int i = 0; i < order.Count; i++)
        {
            Assert.True(tree.Remove(order[i]));
            if (i % 1000 == 0)
            {
                tree.CheckInvariants();
            }
        }

        tree.CheckInvariants();
        Assert.Equal(0, tree.Count);
        Assert.Null(tree.Min);
    }

    [Fact]
    public void RandomAddsAndRemoves_MatchASortedList()
    {
        // Each operation: add a ticket with a tag from a small range (so ties are common), or remove one.
        var operations = Gen.Select(Gen.Bool, Gen.Int[0, 7], Gen.Int[0, 1000]).Array[1, 200];
        operations.Sample(ops => RunAgainstSortedList(new TicketTree(), ops, everyStep: true), iter: 500);
    }

    [Fact]
    public void RandomOperations_OnSmallNodes_MatchASortedList()
    {
        // Small nodes reach leaf and branch splits, merges, evening-out and root growth and shrinkage with a few
        // hundred tickets; sequences of thousands of operations drift the queue up and down through several heights.
        var trees = Gen.Select(Gen.Int[4, 9], Gen.Int[4, 7]);
        var operations = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 40], Gen.Int[0, 100_000]).Array[1, 3000];
        Gen.Select(trees, operations).Sample(
            (shape, ops) => RunAgainstSortedList(
                new TicketTree(shape.Item1, shape.Item2),
                [.. ops.Select(op => (op.Item1 < 5, op.Item2, op.Item3))],
                everyStep: false),
            iter: 200);
    }

    [Fact]
    public void RandomOperations_TakingTheHeadOrAnyTicket_MatchASortedList()
    {
        // The scheduler's mix: arrivals near the back, dispatches of the head, cancels anywhere.
        var operations = Gen.Select(Gen.Int[0, 2], Gen.Int[0, 5], Gen.Int[0, 100_000]).Array[1, 2000];
        Gen.Select(Gen.Int[4, 8], operations).Sample((capacity, ops) =>
        {
            var tree = new TicketTree(capacity, 4);
            var reference = new List<SchedulerTicket>();
            long sequence = 0;
            foreach (var (kind, spread, pick) in ops)
            {
                if (kind == 0 || reference.Count == 0)
                {
                    var ticket = NewTicket((sequence / 10) + spread, ++sequence);
                    tree.Add(ticket);
                    reference.Insert(reference.Count(t => t.CompareKey(ticket) < 0), ticket);
                }
                else
                {
                    var ticket = kind == 1 ? reference[0] : reference[pick % reference.Count];
                    Assert.Same(reference[0], tree.Min);
                    Assert.Same(reference[^1], tree.Max);
                    Assert.True(tree.Remove(ticket));
                    reference.Remove(ticket);
                }
            }

            tree.CheckInvariants();
            Assert.Equal(reference, tree.InOrder(int.MaxValue));
        }, iter: 200);
    }

    [Fact]
    public void InfiniteAndNaNTags_KeepOneConsistentOrder()
    {
        // Tags are finite in practice, but an absurd weight can make one infinite and a later correction NaN: the
        // tree must still hold them in the order CompareKey gives (NaN as negative infinity), next to its sentinels.
        double[] tags = [double.NaN, double.NegativeInfinity, -1, 0, 1, double.PositiveInfinity];
        var operations = Gen.Select(Gen.Bool, Gen.Int[0, tags.Length - 1], Gen.Int[0, 1000]).Array[1, 300];
        operations.Sample(ops =>
        {
            var tree = new TicketTree(4, 4);
            var reference = new List<SchedulerTicket>();
            long sequence = 0;
            foreach (var (add, tag, pick) in ops)
            {
                if (add || reference.Count == 0)
                {
                    var ticket = NewTicket(tags[tag], ++sequence);
                    Assert.Equal(reference.Count(t => t.CompareKey(ticket) < 0), tree.CountBefore(ticket.Tag, ticket.Sequence));
                    tree.Add(ticket);
                    reference.Insert(reference.Count(t => t.CompareKey(ticket) < 0), ticket);
                }
                else
                {
                    var ticket = reference[pick % reference.Count];
                    Assert.True(tree.Remove(ticket));
                    reference.Remove(ticket);
                }

                tree.CheckInvariants();
                Assert.Equal(reference, tree.InOrder(int.MaxValue));
                Assert.Same(reference.FirstOrDefault(), tree.Min);
                Assert.Same(reference.LastOrDefault(), tree.Max);
                for (int i = 0; i < reference.Count; i++)
                {
                    Assert.Equal(i, tree.Rank(reference[i]));
                }
            }
        }, iter: 300);
    }

    private static void RunAgainstSortedList(TicketTree tree, (bool Add, int Tag, int Pick)[] ops, bool everyStep)
    {
        var reference = new List<SchedulerTicket>();
        long sequence = 0;
        foreach (var (add, tag, pick) in ops)
        {
            if (add || reference.Count == 0)
            {
                var ticket = NewTicket(tag, ++sequence);
                tree.Add(ticket);
                reference.Insert(reference.Count(t => t.CompareKey(ticket) < 0), ticket);
            }
            else
            {
                var ticket = reference[pick % reference.Count];
                Assert.True(tree.Remove(ticket));
                Assert.False(tree.Remove(ticket));
                reference.Remove(ticket);
            }

            Assert.Equal(reference.Count, tree.Count);
            Assert.Same(reference.FirstOrDefault(), tree.Min);
            Assert.Same(reference.LastOrDefault(), tree.Max);
            if (everyStep)
            {
                CheckAgainst(tree, reference, tag, sequence);
            }
        }

        CheckAgainst(tree, reference, ops[^1].Tag, sequence);
    }

    private static void CheckAgainst(TicketTree tree, List<SchedulerTicket> reference, int tag, long sequence)
    {
        tree.CheckInvariants();
        Assert.Equal(reference, tree.InOrder(int.MaxValue));
        Assert.Equal(reference.Take(3), tree.InOrder(3));
        for (int i = 0; i < reference.Count; i++)
        {
            Assert.Equal(i, tree.Rank(reference[i]));
        }

        Assert.Equal(reference.Count(t => t.Tag < tag || (t.Tag == tag && t.Sequence < sequence)), tree.CountBefore(tag, sequence));
    }

    private static SchedulerTicket NewTicket(double tag, long sequence)
    {
        var request = new TicketRequest { Id = $"t{sequence}", Owner = "u", Model = "m" };
        return new SchedulerTicket(request, sequence, 0, 0, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch) { Tag = tag };
    }
}
