namespace Anteroom.Scheduling;

/// <summary>
/// The live (waiting or running) tickets by id: an open-addressing hash table with linear probing whose slots hold
/// each ticket with its id's hash, beside an array of one control byte per slot; each ticket keeps its hash too.
/// </summary>
/// <remarks>
/// <para>
/// A <see cref="Dictionary{TKey, TValue}"/> keyed by id costs a million-ticket queue three cache misses per lookup:
/// the id's characters (to hash them), the bucket and the entry. Here the control bytes (empty, or seven bits of the
/// hash) are a sixteenth of the slots' size, small enough to stay in cache, so admission's duplicate check of a new
/// id usually reads no slot at all; removing a ticket that ends reads none of its id (the hash is on the ticket and
/// the slot is matched by reference) and one line of slots.
/// </para>
/// <para>
/// The table is at most half full, so a search ends within a few slots; removal shifts later slots of the same run
/// back rather than leaving tombstones, so searches never slow down with churn.
/// </para>
/// </remarks>
internal sealed class LiveTickets
{
    private const byte Empty = 0;

    private byte[] _control = new byte[16];
    private Slot[] _slots = new Slot[16];
    private int _mask = 15;

    public int Count { get; private set; }

    /// <summary>The hash every lookup of this id uses; tickets keep it as <see cref="SchedulerTicket.IdHash"/>.</summary>
    public static int Hash(string id) => id.GetHashCode(StringComparison.Ordinal);

    public SchedulerTicket? Find(string id) => Find(id, Hash(id));

    public SchedulerTicket? Find(string id, int hash)
    {
        var control = _control;
        var slots = _slots;
        int mask = _mask;
        byte fingerprint = Fingerprint(hash);
        for (int i = hash & mask; ; i = (i + 1) & mask)
        {
            byte here = control[i];
            if (here == Empty)
            {
                return null;
            }

            if (here == fingerprint && slots[i].Hash == hash && string.Equals(slots[i].Ticket!.Id, id, StringComparison.Ordinal))
            {
                return slots[i].Ticket;
            }
        }
    }

    /// <summary>Adds a ticket whose id is not live yet.</summary>
    public void Add(SchedulerTicket ticket)
    {
        if (2 * (Count + 1) > _slots.Length)
        {
            Grow();
        }

        Place(_control, _slots, _mask, ticket.IdHash, ticket);
        Count++;
    }

    /// <summary>Removes this ticket (not merely one with its id). Returns false when it is not here.</summary>
    public bool Remove(SchedulerTicket ticket)
    {
        var control = _control;
        var slots = _slots;
        int mask = _mask;
        byte fingerprint = Fingerprint(ticket.IdHash);
        int hole = ticket.IdHash & mask;
        while (control[hole] != fingerprint || !ReferenceEquals(slots[hole].Ticket, ticket))
        {
            if (control[hole] == Empty)
            {
                return false;
            }

            hole = (hole + 1) & mask;
        }

        // Close the hole: a later slot of the run may move into it unless its home lies cyclically after the hole
        // (then a search for it starts past the hole and would not find it moved there).
        for (int next = (hole + 1) & mask; control[next] != Empty; next = (next + 1) & mask)
        {
            int home = slots[next].Hash & mask;
            if (((next - home) & mask) >= ((next - hole) & mask))
            {
                control[hole] = control[next];
                slots[hole] = slots[next];
                hole = next;
            }
        }

        control[hole] = Empty;
        slots[hole] = default;
        Count--;
        return true;
    }

    /// <summary>A used slot's control byte: the top bit set, and the hash's top seven bits (its low bits pick the slot).</summary>
    private static byte Fingerprint(int hash) => (byte)(0x80 | ((uint)hash >> 25));

    private static void Place(byte[] control, Slot[] slots, int mask, int hash, SchedulerTicket ticket)
    {
        int i = hash & mask;
        while (control[i] != Empty)
        {
            i = (i + 1) & mask;
        }

        control[i] = Fingerprint(hash);
        slots[i] = new Slot(hash, ticket);
    }

    private void Grow()
    {
        int size = _slots.Length * 2;
        var control = new byte[size];
        var slots = new Slot[size];
        int mask = size - 1;
        foreach (var slot in _slots)
        {
            if (slot.Ticket is { } ticket)
            {
                Place(control, slots, mask, slot.Hash, ticket);
            }
        }

        _control = control;
        _slots = slots;
        _mask = mask;
    }

    private readonly record struct Slot(int Hash, SchedulerTicket? Ticket);
}
