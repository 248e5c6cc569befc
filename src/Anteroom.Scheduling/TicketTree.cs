// One file over the usual length on purpose: the node layouts, the vectorised counting and the split, merge and
// rebalancing code keep one invariant (every branch's counts), and read apart none of them can be checked. See the
// remarks on TicketTree.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Anteroom.Scheduling;

/// <summary>
/// The waiting tickets of one model, ordered by (start tag, arrival): a counted B+ tree. Leaves hold up to
/// <see cref="MaxLeafCapacity"/> keys inline next to their tickets, and every branch knows how many tickets each
/// child holds, so insertion, removal and a ticket's rank cost one descent of O(log n) and the head is O(1).
/// </summary>
/// <remarks>
/// <para>
/// Wide nodes are the point. With a million tickets a binary tree is about 28 levels deep and each level is a
/// likely cache and TLB miss; here the tree is three or four levels, and a search reads only keys stored in the
/// nodes, never the tickets themselves.
/// </para>
/// <para>
/// Inside a node the keys are kept as parallel arrays of tags and sequences and searched by counting, with vector
/// compares, how many are below the key, rather than by binary search. Binary search on a cold node is a chain of
/// dependent cache misses, one per probe; the counting loop's loads do not depend on each other, so the processor
/// fetches the node's lines in parallel, and on a node in cache it costs a few dozen cycles. Unused key slots
/// hold sentinels (below everything in front of a leaf's entries, above everything after them and after a branch's
/// separators), so the count runs over a node's whole capacity and can start before the node's length is known.
/// </para>
/// <para>
/// A ticket is found by its key (tags never change while a ticket waits, and sequences are unique), so tickets
/// carry no link into the tree and moving keys between nodes never has to touch them.
/// </para>
/// <para>
/// One file, over the usual length, because the node layouts, the vectorised counting and the split, merge and
/// rebalancing code that keep the counts right are one invariant: read apart, none of them can be checked.
/// </para>
/// </remarks>
internal sealed class TicketTree
{
    /// <summary>Largest number of tickets in one leaf.</summary>
    public const int MaxLeafCapacity = 128;

    /// <summary>Largest number of children of one branch.</summary>
    public const int MaxBranchCapacity = 64;

    private readonly int _leafCapacity;
    private readonly int _branchCapacity;
    private readonly int _minLeaf;
    private readonly int _minBranch;

    // The leftmost leaf. Merges always fold the right node into the left one, so this leaf is never dropped.
    private readonly Leaf _head = new();

    // Scratch space for merging or evening out two nodes; kept so rebalancing allocates nothing.
    private readonly double[] _scratchTags;
    private readonly long[] _scratchSequences;
    private readonly SchedulerTicket?[] _scratchTickets;
    private readonly Node?[] _scratchChildren;
    private readonly int[] _scratchCounts;

    private Node _root;
    private int _height;

    // The branches of the last descent, root first, and which child each one descended into.
    private Branch[] _path = new Branch[4];
    private int[] _slots = new int[4];

    public TicketTree()
        : this(MaxLeafCapacity, MaxBranchCapacity)
    {
    }

    /// <summary>A tree with smaller nodes, so tests reach splits and merges on every level with few tickets.</summary>
    internal TicketTree(int leafCapacity, int branchCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(leafCapacity, 4);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(leafCapacity, MaxLeafCapacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(branchCapacity, 4);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(branchCapacity, MaxBranchCapacity);
        _leafCapacity = leafCapacity;
        _branchCapacity = branchCapacity;
        // Underflow at a quarter: a merged node is then at most three quarters full (see RebalanceLeaves), so a node
        // that has just been merged is far from splitting again and alternating adds and removes cannot thrash.
        _minLeaf = Math.Max(1, leafCapacity / 4);
        // At least two children, so every branch but the root has a sibling to rebalance with.
        _minBranch = Math.Max(2, branchCapacity / 4);
        int scratch = 2 * Math.Max(leafCapacity, branchCapacity);
        _scratchTags = new double[scratch];
        _scratchSequences = new long[scratch];
        _scratchTickets = new SchedulerTicket?[2 * leafCapacity];
        _scratchChildren = new Node?[2 * branchCapacity];
        _scratchCounts = new int[2 * branchCapacity];
        _head.Start = leafCapacity / 2;
        ResetOutside(_head, _head.Start, 0);
        _root = _head;
    }

    public int Count { get; private set; }

    /// <summary>Branch levels above the leaves (0 while one leaf holds everything).</summary>
    internal int Height => _height;

    public SchedulerTicket? Min => _head.Length == 0 ? null : _head.Tickets[_head.Start];

    /// <summary>The last ticket in order: the end of the rightmost path.</summary>
    public SchedulerTicket? Max
    {
        get
        {
            var node = _root;
            for (int level = 0; level < _height; level++)
            {
                var branch = (Branch)node;
                node = branch.Children[branch.Length - 1]!;
            }

            var leaf = (Leaf)node;
            return leaf.Length == 0 ? null : leaf.Tickets[leaf.Start + leaf.Length - 1];
        }
    }

    public void Add(SchedulerTicket ticket)
    {
        double tag = SortTag(ticket.Tag);
        long sequence = ticket.Sequence;
        var node = _root;
        for (int level = 0; level < _height; level++)
        {
            var branch = (Branch)node;
            int slot = Route(branch, tag, sequence);
            branch.Counts[slot]++;
            _path[level] = branch;
            _slots[level] = slot;
            node = branch.Children[slot]!;
        }

        var leaf = (Leaf)node;
        int index = LowerBound(leaf, tag, sequence);
        Count++;
        if (leaf.Length < _leafCapacity)
        {
            InsertIntoLeaf(leaf, index, tag, sequence, ticket);
            return;
        }

        var right = SplitLeaf(leaf);
        // At index == leaf.Length the key is still below the right half's first key, so it may end the left half.
        if (index <= leaf.Length)
        {
            InsertIntoLeaf(leaf, index, tag, sequence, ticket);
        }
        else
        {
            InsertIntoLeaf(right, index - leaf.Length, tag, sequence, ticket);
        }

        AddChild(_height - 1, right, right.Tags[right.Start], right.Sequences[right.Start], leaf.Length, right.Length);
    }

    public bool Remove(SchedulerTicket ticket)
    {
        Leaf leaf;
        int index;
        if (ReferenceEquals(ticket, Min))
        {
            // Dispatch takes the head: follow the leftmost path, no key to compare.
            var node = _root;
            for (int level = 0; level < _height; level++)
            {
                var branch = (Branch)node;
                _path[level] = branch;
                _slots[level] = 0;
                node = branch.Children[0]!;
            }

            leaf = _head;
            index = 0;
        }
        else
        {
            double tag = SortTag(ticket.Tag);
            leaf = Descend(tag, ticket.Sequence);
            index = LowerBound(leaf, tag, ticket.Sequence);
            if (index == leaf.Length || !ReferenceEquals(leaf.Tickets[leaf.Start + index], ticket))
            {
                return false;
            }
        }

        RemoveFromLeaf(leaf, index);
        Count--;
        for (int level = 0; level < _height; level++)
        {
            _path[level].Counts[_slots[level]]--;
        }

        if (_height > 0 && leaf.Length < _minLeaf)
        {
            Rebalance(_height - 1);
        }

        return true;
    }

    /// <summary>How many tickets sort before this one (0 for the head). The ticket must be in the tree.</summary>
    public int Rank(SchedulerTicket ticket)
    {
        double tag = SortTag(ticket.Tag);
        var leaf = DescendCounting(tag, ticket.Sequence, out int before);
        int index = LowerBound(leaf, tag, ticket.Sequence);
        if (index == leaf.Length || !ReferenceEquals(leaf.Tickets[leaf.Start + index], ticket))
        {
            throw new InvalidOperationException($"Ticket {ticket.Id} is not in this queue.");
        }

        return before + index;
    }

    /// <summary>How many tickets sort before a ticket with this key would (its rank if it were inserted).</summary>
    public int CountBefore(double tag, long sequence)
    {
        tag = SortTag(tag);
        var leaf = DescendCounting(tag, sequence, out int before);
        return before + LowerBound(leaf, tag, sequence);
    }

    /// <summary>The waiting tickets in dispatch order, at most <paramref name="limit"/>.</summary>
    public List<SchedulerTicket> InOrder(int limit)
    {
        var result = new List<SchedulerTicket>(Math.Min(limit, Count));
        for (var leaf = _head; leaf is not null && result.Count < limit; leaf = leaf.Next)
        {
            int take = Math.Min(leaf.Length, limit - result.Count);
            for (int i = 0; i < take; i++)
            {
                result.Add(leaf.Tickets[leaf.Start + i]!);
            }
        }

        return result;
    }

    /// <summary>
    /// Checks the structure: keys in order inside and across nodes, separators that bound their children, child
    /// counts that match, node sizes within bounds, and the leaf chain in key order. For tests.
    /// </summary>
    internal void CheckInvariants()
    {
        var leaves = new List<Leaf>();
        int total = Check(_root, _height, null, null, leaves, isRoot: true);
        Assert(total == Count, "the count does not match the tickets held");
        int chained = 0;
        for (var leaf = _head; leaf is not null; leaf = leaf.Next)
        {
            Assert(chained < leaves.Count && ReferenceEquals(leaf, leaves[chained]), "the leaf chain is not in key order");
            chained++;
        }

        Assert(chained == leaves.Count, "the leaf chain misses leaves");
        (double Tag, long Sequence)? previous = null;
        foreach (var leaf in leaves)
        {
            for (int i = leaf.Start; i < leaf.Start + leaf.Length; i++)
            {
                var key = (leaf.Tags[i], leaf.Sequences[i]);
                var ticket = leaf.Tickets[i];
                Assert(ticket is not null && key == (SortTag(ticket.Tag), ticket.Sequence), "a key does not match its ticket");
                Assert(previous is not { } p || Compare(p.Tag, p.Sequence, key.Item1, key.Item2) < 0, "keys are out of order");
                previous = key;
            }

            for (int i = 0; i < _leafCapacity; i++)
            {
                bool inside = i >= leaf.Start && i < leaf.Start + leaf.Length;
                Assert(inside || leaf.Tickets[i] is null, "a leaf keeps a ticket it no longer holds");
                Assert(
                    inside
                    || (i < leaf.Start && leaf.Tags[i] == double.NegativeInfinity && leaf.Sequences[i] == long.MinValue)
                    || (i >= leaf.Start && leaf.Tags[i] == double.PositiveInfinity && leaf.Sequences[i] == long.MaxValue),
                    "a leaf's unused slot holds no sentinel");
            }
        }
    }

    private int Check(Node node, int height, (double, long)? low, (double, long)? high, List<Leaf> leaves, bool isRoot)
    {
        if (height == 0)
        {
            var leaf = (Leaf)node;
            Assert(leaf.Start >= 0 && leaf.Length >= 0 && leaf.Start + leaf.Length <= _leafCapacity, "a leaf's entries overrun it");
            Assert(isRoot || leaf.Length >= _minLeaf, "a leaf is underfull");
            for (int i = leaf.Start; i < leaf.Start + leaf.Length; i++)
            {
                Assert(
                    (low is not { } l || Compare(l.Item1, l.Item2, leaf.Tags[i], leaf.Sequences[i]) <= 0)
                    && (high is not { } h || Compare(leaf.Tags[i], leaf.Sequences[i], h.Item1, h.Item2) < 0),
                    "a key is outside its separators");
            }

            leaves.Add(leaf);
            return leaf.Length;
        }

        var branch = (Branch)node;
        Assert(branch.Length <= _branchCapacity && branch.Length >= (isRoot ? 2 : _minBranch), "a branch has too few or too many children");
        int total = 0;
        for (int i = 0; i < branch.Length; i++)
        {
            var childLow = i == 0 ? low : (branch.Tags[i], branch.Sequences[i]);
            var childHigh = i == branch.Length - 1 ? high : (branch.Tags[i + 1], branch.Sequences[i + 1]);
            int held = Check(branch.Children[i]!, height - 1, childLow, childHigh, leaves, isRoot: false);
            Assert(held == branch.Counts[i], "a child count is wrong");
            total += held;
        }

        for (int i = branch.Length; i < _branchCapacity; i++)
        {
            Assert(branch.Children[i] is null, "a branch keeps a child it no longer holds");
            Assert(branch.Tags[i] == double.PositiveInfinity && branch.Sequences[i] == long.MaxValue, "a branch's unused slot holds no sentinel");
        }

        return total;
    }

    /// <summary>
    /// The tag as the order uses it: NaN, which no comparison orders, sorts as negative infinity. Tags are finite in
    /// practice; an absurdly small weight can still push one to infinity and a later correction to NaN, and that must
    /// not break the tree. Real sequences lie strictly between the sentinels', so infinite tags need nothing else.
    /// </summary>
    internal static double SortTag(double tag) => double.IsNaN(tag) ? double.NegativeInfinity : tag;

    private static void Assert(bool condition, string problem)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"Ticket tree is broken: {problem}.");
        }
    }

    private static int Compare(double tag, long sequence, double otherTag, long otherSequence)
    {
        int byTag = tag.CompareTo(otherTag);
        return byTag != 0 ? byTag : sequence.CompareTo(otherSequence);
    }

    /// <summary>
    /// How many of the keys are below (tag, sequence), or at most it when <paramref name="orEqual"/>. The keys are
    /// sorted, so this is also where the key belongs.
    /// </summary>
    private static int CountBelow(ReadOnlySpan<double> tags, ReadOnlySpan<long> sequences, double tag, long sequence, bool orEqual)
    {
        int length = tags.Length;
        int count = 0;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var tagVector = Vector512.Create(tag);
            var sequenceVector = Vector512.Create(sequence);
            for (; i <= length - Vector512<double>.Count; i += Vector512<double>.Count)
            {
                var tagsHere = Vector512.Create(tags[i..]);
                var sequencesHere = Vector512.Create(sequences[i..]);
                var sameTag = Vector512.Equals(tagsHere, tagVector).AsInt64();
                var bySequence = orEqual
                    ? Vector512.LessThanOrEqual(sequencesHere, sequenceVector)
                    : Vector512.LessThan(sequencesHere, sequenceVector);
                var below = Vector512.LessThan(tagsHere, tagVector).AsInt64() | (sameTag & bySequence);
                count += BitOperations.PopCount(below.ExtractMostSignificantBits());
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var tagVector = Vector256.Create(tag);
            var sequenceVector = Vector256.Create(sequence);
            for (; i <= length - Vector256<double>.Count; i += Vector256<double>.Count)
            {
                var tagsHere = Vector256.Create(tags[i..]);
                var sequencesHere = Vector256.Create(sequences[i..]);
                var sameTag = Vector256.Equals(tagsHere, tagVector).AsInt64();
                var bySequence = orEqual
                    ? Vector256.LessThanOrEqual(sequencesHere, sequenceVector)
                    : Vector256.LessThan(sequencesHere, sequenceVector);
                var below = Vector256.LessThan(tagsHere, tagVector).AsInt64() | (sameTag & bySequence);
                count += BitOperations.PopCount(below.ExtractMostSignificantBits());
            }
        }

        for (; i < length; i++)
        {
            double here = tags[i];
            long hereSequence = sequences[i];
            if (here < tag || (here == tag && (hereSequence < sequence || (orEqual && hereSequence == sequence))))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Which child of the branch holds the key: the last whose separator is at most the key.</summary>
    private int Route(Branch branch, double tag, long sequence) =>
        // Separators are at [1, Length) and sentinels above every key after them, so the count of slots from 1 on
        // whose key is at most this one is the child's slot.
        CountBelow(
            ((ReadOnlySpan<double>)branch.Tags)[1.._branchCapacity],
            ((ReadOnlySpan<long>)branch.Sequences)[1.._branchCapacity],
            tag,
            sequence,
            orEqual: true);

    /// <summary>The number of the leaf's keys below the key.</summary>
    private int LowerBound(Leaf leaf, double tag, long sequence) =>
        // The sentinels in front of the entries are below every key and those after them above, so the count over
        // the whole leaf is Start plus the entries below the key.
        CountBelow(
            ((ReadOnlySpan<double>)leaf.Tags)[.._leafCapacity],
            ((ReadOnlySpan<long>)leaf.Sequences)[.._leafCapacity],
            tag,
            sequence,
            orEqual: false) - leaf.Start;

    /// <summary>Walks to the leaf that holds (or would hold) the key, recording the path.</summary>
    private Leaf Descend(double tag, long sequence)
    {
        var node = _root;
        for (int level = 0; level < _height; level++)
        {
            var branch = (Branch)node;
            int slot = Route(branch, tag, sequence);
            _path[level] = branch;
            _slots[level] = slot;
            node = branch.Children[slot]!;
        }

        return (Leaf)node;
    }

    /// <summary>Walks to the leaf that holds (or would hold) the key, counting the tickets in the leaves to its left.</summary>
    private Leaf DescendCounting(double tag, long sequence, out int before)
    {
        before = 0;
        var node = _root;
        for (int level = 0; level < _height; level++)
        {
            var branch = (Branch)node;
            int slot = Route(branch, tag, sequence);
            before += Sum(((ReadOnlySpan<int>)branch.Counts)[..slot]);
            node = branch.Children[slot]!;
        }

        return (Leaf)node;
    }

    private static int Sum(ReadOnlySpan<int> counts)
    {
        int length = counts.Length;
        int sum = 0;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && length >= Vector256<int>.Count)
        {
            var sums = Vector256<int>.Zero;
            for (; i <= length - Vector256<int>.Count; i += Vector256<int>.Count)
            {
                sums += Vector256.Create(counts[i..]);
            }

            sum = Vector256.Sum(sums);
        }

        for (; i < length; i++)
        {
            sum += counts[i];
        }

        return sum;
    }

    private void InsertIntoLeaf(Leaf leaf, int index, double tag, long sequence, SchedulerTicket ticket)
    {
        int start = leaf.Start, length = leaf.Length;
        // The entries float inside the leaf with room on both sides: shift whichever side of the new entry is shorter
        // (and has room), so the work is a quarter of a leaf on average and adding at either end moves nothing.
        bool roomBack = start + length < _leafCapacity;
        if (start > 0 && (index < length / 2 || !roomBack))
        {
            Move(leaf, start, start - 1, index);
            leaf.Start = --start;
        }
        else
        {
            Move(leaf, start + index, start + index + 1, length - index);
        }

        leaf.Tags[start + index] = tag;
        leaf.Sequences[start + index] = sequence;
        leaf.Tickets[start + index] = ticket;
        leaf.Length = length + 1;
    }

    private static void RemoveFromLeaf(Leaf leaf, int index)
    {
        int start = leaf.Start, length = leaf.Length;
        // Close the gap from the shorter side; taking the head (index 0) moves nothing.
        if (index < length / 2)
        {
            Move(leaf, start, start + 1, index);
            leaf.Tags[start] = double.NegativeInfinity;
            leaf.Sequences[start] = long.MinValue;
            leaf.Tickets[start] = null;
            leaf.Start = start + 1;
        }
        else
        {
            int last = start + length - 1;
            Move(leaf, start + index + 1, start + index, length - index - 1);
            leaf.Tags[last] = double.PositiveInfinity;
            leaf.Sequences[last] = long.MaxValue;
            leaf.Tickets[last] = null;
        }

        leaf.Length = length - 1;
    }

    /// <summary>Moves entries inside a leaf; the ranges may overlap.</summary>
    private static void Move(Leaf leaf, int from, int to, int count)
    {
        Span<double> tags = leaf.Tags;
        Span<long> sequences = leaf.Sequences;
        Span<SchedulerTicket?> tickets = leaf.Tickets;
        tags.Slice(from, count).CopyTo(tags[to..]);
        sequences.Slice(from, count).CopyTo(sequences[to..]);
        tickets.Slice(from, count).CopyTo(tickets[to..]);
    }

    /// <summary>Moves the upper half of a full leaf into a new leaf to its right; both end up centred.</summary>
    private Leaf SplitLeaf(Leaf leaf)
    {
        int half = leaf.Length / 2;
        int moved = leaf.Length - half;
        var right = new Leaf { Next = leaf.Next };
        leaf.Next = right;
        int rightStart = (_leafCapacity - moved) / 2;
        ((Span<double>)leaf.Tags).Slice(leaf.Start + half, moved).CopyTo(((Span<double>)right.Tags)[rightStart..]);
        ((Span<long>)leaf.Sequences).Slice(leaf.Start + half, moved).CopyTo(((Span<long>)right.Sequences)[rightStart..]);
        ((Span<SchedulerTicket?>)leaf.Tickets).Slice(leaf.Start + half, moved).CopyTo(((Span<SchedulerTicket?>)right.Tickets)[rightStart..]);
        right.Start = rightStart;
        right.Length = moved;
        ResetOutside(right, rightStart, moved);

        int leftStart = (_leafCapacity - half) / 2;
        Move(leaf, leaf.Start, leftStart, half);
        ResetOutside(leaf, leftStart, half);
        leaf.Start = leftStart;
        leaf.Length = half;
        return right;
    }

    /// <summary>
    /// Puts the sentinels around the leaf's entries at [start, start + length) and drops its references outside
    /// them, so a ticket that left is not kept reachable.
    /// </summary>
    private void ResetOutside(Leaf leaf, int start, int length)
    {
        int end = start + length;
        Span<double> tags = ((Span<double>)leaf.Tags)[.._leafCapacity];
        Span<long> sequences = ((Span<long>)leaf.Sequences)[.._leafCapacity];
        Span<SchedulerTicket?> tickets = ((Span<SchedulerTicket?>)leaf.Tickets)[.._leafCapacity];
        tags[..start].Fill(double.NegativeInfinity);
        sequences[..start].Fill(long.MinValue);
        tickets[..start].Clear();
        tags[end..].Fill(double.PositiveInfinity);
        sequences[end..].Fill(long.MaxValue);
        tickets[end..].Clear();
    }

    /// <summary>
    /// Adds a node that a split made, right after the child the last descent took at <paramref name="level"/>,
    /// splitting full branches upwards and growing a new root when the root splits.
    /// </summary>
    private void AddChild(int level, Node child, double tag, long sequence, int leftCount, int rightCount)
    {
        while (level >= 0)
        {
            var branch = _path[level];
            int slot = _slots[level] + 1;
            branch.Counts[slot - 1] = leftCount;
            if (branch.Length < _branchCapacity)
            {
                InsertIntoBranch(branch, slot, tag, sequence, child, rightCount);
                return;
            }

            var right = SplitBranch(branch);
            // The separator that moves up is the right branch's lower bound, kept in its first key slot.
            double upTag = right.Tags[0];
            long upSequence = right.Sequences[0];
            if (slot <= branch.Length)
            {
                InsertIntoBranch(branch, slot, tag, sequence, child, rightCount);
            }
            else
            {
                InsertIntoBranch(right, slot - branch.Length, tag, sequence, child, rightCount);
            }

            child = right;
            tag = upTag;
            sequence = upSequence;
            leftCount = Sum(((ReadOnlySpan<int>)branch.Counts)[..branch.Length]);
            rightCount = Sum(((ReadOnlySpan<int>)right.Counts)[..right.Length]);
            level--;
        }

        var root = new Branch { Length = 2 };
        ResetOutside(root, 2);
        root.Children[0] = _root;
        root.Children[1] = child;
        root.Counts[0] = leftCount;
        root.Counts[1] = rightCount;
        root.Tags[1] = tag;
        root.Sequences[1] = sequence;
        _root = root;
        _height++;
        if (_path.Length < _height)
        {
            Array.Resize(ref _path, _height * 2);
            Array.Resize(ref _slots, _height * 2);
        }
    }

    private static void InsertIntoBranch(Branch branch, int slot, double tag, long sequence, Node child, int count)
    {
        int length = branch.Length;
        Move(branch, slot, slot + 1, length - slot);
        branch.Tags[slot] = tag;
        branch.Sequences[slot] = sequence;
        branch.Children[slot] = child;
        branch.Counts[slot] = count;
        branch.Length = length + 1;
    }

    private static void RemoveFromBranch(Branch branch, int slot)
    {
        int length = branch.Length;
        Move(branch, slot + 1, slot, length - slot - 1);
        branch.Tags[length - 1] = double.PositiveInfinity;
        branch.Sequences[length - 1] = long.MaxValue;
        branch.Children[length - 1] = null;
        branch.Length = length - 1;
    }

    /// <summary>Moves children inside a branch; the ranges may overlap.</summary>
    private static void Move(Branch branch, int from, int to, int count)
    {
        Span<double> tags = branch.Tags;
        Span<long> sequences = branch.Sequences;
        Span<Node?> children = branch.Children;
        Span<int> counts = branch.Counts;
        tags.Slice(from, count).CopyTo(tags[to..]);
        sequences.Slice(from, count).CopyTo(sequences[to..]);
        children.Slice(from, count).CopyTo(children[to..]);
        counts.Slice(from, count).CopyTo(counts[to..]);
    }

    /// <summary>
    /// Moves the upper half of a full branch into a new branch. The separator between the two stays in the new
    /// branch's first key slot, which routing never reads; the caller moves it up to the parent.
    /// </summary>
    private static Branch SplitBranch(Branch branch)
    {
        int half = branch.Length / 2;
        int moved = branch.Length - half;
        var right = new Branch { Length = moved };
        ((Span<double>)branch.Tags).Slice(half, moved).CopyTo(right.Tags);
        ((Span<long>)branch.Sequences).Slice(half, moved).CopyTo(right.Sequences);
        ((Span<Node?>)branch.Children).Slice(half, moved).CopyTo(right.Children);
        ((Span<int>)branch.Counts).Slice(half, moved).CopyTo(right.Counts);
        ResetOutside(branch, half);
        ResetOutside(right, moved);
        branch.Length = half;
        return right;
    }

    /// <summary>
    /// The child of <c>_path[level]</c> that the last descent took is underfull: merge it with a neighbour when both
    /// fit in three quarters of a node, or else share their entries evenly. A merge takes a child from the branch,
    /// which may leave that branch underfull in turn, up to the root, which shrinks when it has one child left.
    /// </summary>
    private void Rebalance(int level)
    {
        while (level >= 0)
        {
            var parent = _path[level];
            int slot = _slots[level];
            // The left one of the pair is the underfull child's left neighbour, or the child itself when it is first.
            int left = slot > 0 ? slot - 1 : slot;
            bool merged = level == _height - 1
                ? RebalanceLeaves(parent, left)
                : RebalanceBranches(parent, left);
            if (!merged)
            {
                return;
            }

            if (level == 0)
            {
                if (parent.Length == 1)
                {
                    _root = parent.Children[0]!;
                    _height--;
                }

                return;
            }

            if (parent.Length >= _minBranch)
            {
                return;
            }

            level--;
        }
    }

    /// <summary>Evens out or merges the leaves at <paramref name="slot"/> and after it. True when they merged.</summary>
    private bool RebalanceLeaves(Branch parent, int slot)
    {
        var left = (Leaf)parent.Children[slot]!;
        var right = (Leaf)parent.Children[slot + 1]!;
        int total = left.Length + right.Length;
        var tags = _scratchTags.AsSpan(0, total);
        var sequences = _scratchSequences.AsSpan(0, total);
        var tickets = _scratchTickets.AsSpan(0, total);
        Gather(left, tags, sequences, tickets);
        Gather(right, tags[left.Length..], sequences[left.Length..], tickets[left.Length..]);

        bool merge = total <= _leafCapacity - (_leafCapacity / 4);
        int leftLength = merge ? total : total / 2;
        Fill(left, tags[..leftLength], sequences[..leftLength], tickets[..leftLength]);
        parent.Counts[slot] = leftLength;
        if (merge)
        {
            left.Next = right.Next;
            RemoveFromBranch(parent, slot + 1);
        }
        else
        {
            Fill(right, tags[leftLength..], sequences[leftLength..], tickets[leftLength..]);
            parent.Counts[slot + 1] = total - leftLength;
            parent.Tags[slot + 1] = tags[leftLength];
            parent.Sequences[slot + 1] = sequences[leftLength];
        }

        tickets.Clear();
        return merge;
    }

    private static void Gather(Leaf leaf, Span<double> tags, Span<long> sequences, Span<SchedulerTicket?> tickets)
    {
        ((Span<double>)leaf.Tags).Slice(leaf.Start, leaf.Length).CopyTo(tags);
        ((Span<long>)leaf.Sequences).Slice(leaf.Start, leaf.Length).CopyTo(sequences);
        ((Span<SchedulerTicket?>)leaf.Tickets).Slice(leaf.Start, leaf.Length).CopyTo(tickets);
    }

    private void Fill(Leaf leaf, ReadOnlySpan<double> tags, ReadOnlySpan<long> sequences, ReadOnlySpan<SchedulerTicket?> tickets)
    {
        int start = (_leafCapacity - tags.Length) / 2;
        tags.CopyTo(((Span<double>)leaf.Tags)[start..]);
        sequences.CopyTo(((Span<long>)leaf.Sequences)[start..]);
        tickets.CopyTo(((Span<SchedulerTicket?>)leaf.Tickets)[start..]);
        ResetOutside(leaf, start, tags.Length);
        leaf.Start = start;
        leaf.Length = tags.Length;
    }

    /// <summary>Evens out or merges the branches at <paramref name="slot"/> and after it. True when they merged.</summary>
    private bool RebalanceBranches(Branch parent, int slot)
    {
        var left = (Branch)parent.Children[slot]!;
        var right = (Branch)parent.Children[slot + 1]!;
        int total = left.Length + right.Length;
        var tags = _scratchTags.AsSpan(0, total);
        var sequences = _scratchSequences.AsSpan(0, total);
        var children = _scratchChildren.AsSpan(0, total);
        var counts = _scratchCounts.AsSpan(0, total);
        Gather(left, tags, sequences, children, counts);
        Gather(right, tags[left.Length..], sequences[left.Length..], children[left.Length..], counts[left.Length..]);
        // The right branch's first child is bounded below by the parent's separator, not by its own first key slot.
        tags[left.Length] = parent.Tags[slot + 1];
        sequences[left.Length] = parent.Sequences[slot + 1];

        bool merge = total <= _branchCapacity - (_branchCapacity / 4);
        int leftLength = merge ? total : total / 2;
        Fill(left, tags[..leftLength], sequences[..leftLength], children[..leftLength], counts[..leftLength]);
        parent.Counts[slot] = Sum(((ReadOnlySpan<int>)left.Counts)[..left.Length]);
        if (merge)
        {
            RemoveFromBranch(parent, slot + 1);
        }
        else
        {
            Fill(right, tags[leftLength..], sequences[leftLength..], children[leftLength..], counts[leftLength..]);
            parent.Counts[slot + 1] = Sum(((ReadOnlySpan<int>)right.Counts)[..right.Length]);
            parent.Tags[slot + 1] = tags[leftLength];
            parent.Sequences[slot + 1] = sequences[leftLength];
        }

        children.Clear();
        return merge;
    }

    private static void Gather(Branch branch, Span<double> tags, Span<long> sequences, Span<Node?> children, Span<int> counts)
    {
        ((Span<double>)branch.Tags)[..branch.Length].CopyTo(tags);
        ((Span<long>)branch.Sequences)[..branch.Length].CopyTo(sequences);
        ((Span<Node?>)branch.Children)[..branch.Length].CopyTo(children);
        ((Span<int>)branch.Counts)[..branch.Length].CopyTo(counts);
    }

    private static void Fill(Branch branch, ReadOnlySpan<double> tags, ReadOnlySpan<long> sequences, ReadOnlySpan<Node?> children, ReadOnlySpan<int> counts)
    {
        tags.CopyTo(branch.Tags);
        sequences.CopyTo(branch.Sequences);
        children.CopyTo(branch.Children);
        counts.CopyTo(branch.Counts);
        ResetOutside(branch, children.Length);
        branch.Length = children.Length;
    }

    /// <summary>Puts the sentinel above every key after the branch's first <paramref name="length"/> children and drops its references there.</summary>
    private static void ResetOutside(Branch branch, int length)
    {
        ((Span<double>)branch.Tags)[length..].Fill(double.PositiveInfinity);
        ((Span<long>)branch.Sequences)[length..].Fill(long.MaxValue);
        ((Span<Node?>)branch.Children)[length..].Clear();
    }

    private abstract class Node
    {
        /// <summary>Tickets in a leaf, children in a branch.</summary>
        public int Length;
    }

    /// <summary>Up to a leaf's capacity of tickets with their keys, in order, at [Start, Start + Length).</summary>
    private sealed class Leaf : Node
    {
        public int Start;
        public Leaf? Next;
        public LeafTags Tags;
        public LeafSequences Sequences;
        public LeafTickets Tickets;
    }

    /// <summary>
    /// Children in key order with how many tickets each holds. Key i (i ≥ 1) separates child i − 1, whose keys are
    /// all below it, from child i, whose keys are all at or above it; key 0 is not used for routing.
    /// </summary>
    private sealed class Branch : Node
    {
        public BranchTags Tags;
        public BranchSequences Sequences;
        public BranchChildren Children;
        public BranchCounts Counts;
    }

    // Inline buffers keep a node's keys in the node object itself: one object, no pointer to chase to the keys.
    [InlineArray(MaxLeafCapacity)]
    private struct LeafTags
    {
        private double _element;
    }

    [InlineArray(MaxLeafCapacity)]
    private struct LeafSequences
    {
        private long _element;
    }

    [InlineArray(MaxLeafCapacity)]
    private struct LeafTickets
    {
        private SchedulerTicket? _element;
    }

    [InlineArray(MaxBranchCapacity)]
    private struct BranchTags
    {
        private double _element;
    }

    [InlineArray(MaxBranchCapacity)]
    private struct BranchSequences
    {
        private long _element;
    }

    [InlineArray(MaxBranchCapacity)]
    private struct BranchChildren
    {
        private Node? _element;
    }

    [InlineArray(MaxBranchCapacity)]
    private struct BranchCounts
    {
        private int _element;
    }
}
