namespace Anteroom.Scheduling;

/// <summary>
/// The waiting tickets of one model, ordered by (start tag, arrival). A treap whose nodes are the tickets
/// themselves, each knowing the size of its subtree, so insertion, removal, the head and a ticket's rank all
/// cost O(log n) and no node is allocated besides the ticket.
/// </summary>
internal sealed class TicketTree
{
    private Ticket? _root;

    public int Count => _root?.Size ?? 0;

    public Ticket? Min
    {
        get
        {
            var node = _root;
            if (node is null)
            {
                return null;
            }

            while (node.Left is not null)
            {
                node = node.Left;
            }

            return node;
        }
    }

    public void Add(Ticket ticket)
    {
        ticket.Left = ticket.Right = null;
        ticket.Size = 1;
        _root = Insert(_root, ticket);
    }

    public bool Remove(Ticket ticket)
    {
        bool removed = false;
        _root = Delete(_root, ticket, ref removed);
        return removed;
    }

    /// <summary>How many tickets sort before this one (0 for the head). The ticket must be in the tree.</summary>
    public int Rank(Ticket ticket)
    {
        int rank = 0;
        var node = _root;
        while (node is not null)
        {
            int cmp = ticket.CompareKey(node);
            if (cmp == 0)
            {
                return rank + SizeOf(node.Left);
            }

            if (cmp < 0)
            {
                node = node.Left;
            }
            else
            {
                rank += SizeOf(node.Left) + 1;
                node = node.Right;
            }
        }

        throw new InvalidOperationException($"Ticket {ticket.Id} is not in this queue.");
    }

    /// <summary>How many tickets sort before a ticket with this key would (its rank if it were inserted).</summary>
    public int CountBefore(double tag, long sequence)
    {
        int rank = 0;
        var node = _root;
        while (node is not null)
        {
            int cmp = tag.CompareTo(node.Tag);
            if (cmp == 0)
            {
                cmp = sequence.CompareTo(node.Sequence);
            }

            if (cmp <= 0)
            {
                node = node.Left;
            }
            else
            {
                rank += SizeOf(node.Left) + 1;
                node = node.Right;
            }
        }

        return rank;
    }

    /// <summary>The waiting tickets in dispatch order, at most <paramref name="limit"/>.</summary>
    public List<Ticket> InOrder(int limit)
    {
        var result = new List<Ticket>(Math.Min(limit, Count));
        var stack = new Stack<Ticket>();
        var node = _root;
        while ((node is not null || stack.Count > 0) && result.Count < limit)
        {
            while (node is not null)
            {
                stack.Push(node);
                node = node.Left;
            }

            node = stack.Pop();
            result.Add(node);
            node = node.Right;
        }

        return result;
    }

    private static int SizeOf(Ticket? node) => node?.Size ?? 0;

    private static void Update(Ticket node) => node.Size = 1 + SizeOf(node.Left) + SizeOf(node.Right);

    private static Ticket Insert(Ticket? node, Ticket ticket)
    {
        if (node is null)
        {
            return ticket;
        }

        if (ticket.CompareKey(node) < 0)
        {
            node.Left = Insert(node.Left, ticket);
            if (node.Left.TreePriority > node.TreePriority)
            {
                node = RotateRight(node);
            }
        }
        else
        {
            node.Right = Insert(node.Right, ticket);
            if (node.Right.TreePriority > node.TreePriority)
            {
                node = RotateLeft(node);
            }
        }

        Update(node);
        return node;
    }

    private static Ticket? Delete(Ticket? node, Ticket ticket, ref bool removed)
    {
        if (node is null)
        {
            return null;
        }

        if (ReferenceEquals(node, ticket))
        {
            removed = true;
            var merged = Merge(node.Left, node.Right);
            ticket.Left = ticket.Right = null;
            ticket.Size = 1;
            return merged;
        }

        if (ticket.CompareKey(node) < 0)
        {
            node.Left = Delete(node.Left, ticket, ref removed);
        }
        else
        {
            node.Right = Delete(node.Right, ticket, ref removed);
        }

        Update(node);
        return node;
    }

    private static Ticket? Merge(Ticket? left, Ticket? right)
    {
        if (left is null)
        {
            return right;
        }

        if (right is null)
        {
            return left;
        }

        if (left.TreePriority > right.TreePriority)
        {
            left.Right = Merge(left.Right, right);
            Update(left);
            return left;
        }

        right.Left = Merge(left, right.Left);
        Update(right);
        return right;
    }

    private static Ticket RotateRight(Ticket node)
    {
        var pivot = node.Left!;
        node.Left = pivot.Right;
        pivot.Right = node;
        Update(node);
        Update(pivot);
        return pivot;
    }

    private static Ticket RotateLeft(Ticket node)
    {
        var pivot = node.Right!;
        node.Right = pivot.Left;
        pivot.Left = node;
        Update(node);
        Update(pivot);
        return pivot;
    }
}
