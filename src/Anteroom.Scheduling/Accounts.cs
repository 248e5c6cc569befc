namespace Anteroom.Scheduling;

/// <summary>A user's standing: its virtual token counter and its tickets.</summary>
internal sealed class UserAccount
{
    private readonly Dictionary<string, LinkedList<Ticket>> _waitingByModel = new(StringComparer.Ordinal);

    // One counter per model: each model's queue has its own virtual clock, so a counter moved on one model's clock
    // means nothing on another's (a cheap request on an idle model must not wipe out a backlog's debt elsewhere).
    private readonly Dictionary<string, double> _finishTags = new(StringComparer.Ordinal);

    public UserAccount(string owner) => Owner = owner;

    public string Owner { get; }

    public int Waiting;

    public readonly List<SlotLease> Running = [];

    public int InFlight => Waiting + Running.Count;

    public bool IsIdle => Waiting == 0 && Running.Count == 0;

    public int WaitingOn(string model) => _waitingByModel.TryGetValue(model, out var list) ? list.Count : 0;

    public IEnumerable<Ticket> FirstWaitingPerModel()
    {
        foreach (var list in _waitingByModel.Values)
        {
            yield return list.First!.Value;
        }
    }

    /// <summary>Virtual finish tag of the user's latest ticket for the model: service received (and queued) per unit of weight.</summary>
    public double FinishTag(string model) => _finishTags.GetValueOrDefault(model);

    public void SetFinishTag(string model, double tag) => _finishTags[model] = tag;

    /// <summary>The start tag of the user's newest waiting ticket for the model (the largest: tags only grow).</summary>
    public double LastWaitingTag(string model) =>
        _waitingByModel.TryGetValue(model, out var list) ? list.Last!.Value.Tag : double.NegativeInfinity;

    /// <summary>Adds a waiting ticket and keeps the model's set of sole waiting tickets in step.</summary>
    public void AddWaiting(Ticket ticket, ModelQueue queue, bool atFront)
    {
        if (!_waitingByModel.TryGetValue(ticket.Model, out var list))
        {
            list = new LinkedList<Ticket>();
            _waitingByModel[ticket.Model] = list;
        }

        if (list.Count == 1)
        {
            queue.Singles.Remove(list.First!.Value);
        }

        ticket.OwnerNode = atFront ? list.AddFirst(ticket) : list.AddLast(ticket);
        if (list.Count == 1)
        {
            queue.Singles.Add(ticket);
        }

        Waiting++;
    }

    public void RemoveWaiting(Ticket ticket, ModelQueue queue)
    {
        var list = _waitingByModel[ticket.Model];
        if (list.Count == 1)
        {
            queue.Singles.Remove(ticket);
        }

        list.Remove(ticket.OwnerNode!);
        ticket.OwnerNode = null;
        if (list.Count == 1)
        {
            queue.Singles.Add(list.First!.Value);
        }
        else if (list.Count == 0)
        {
            _waitingByModel.Remove(ticket.Model);
        }

        Waiting--;
    }
}

/// <summary>The waiting tickets of one model and the fair-queue clock that orders them.</summary>
internal sealed class ModelQueue
{
    public ModelQueue(string model, int[] backends)
    {
        Model = model;
        Backends = backends;
    }

    public string Model { get; }

    /// <summary>Indexes of the backends that serve the model.</summary>
    public int[] Backends { get; }

    public readonly TicketTree Waiting = new();

    /// <summary>Tickets that are their owner's only waiting ticket for this model.</summary>
    public readonly SortedSet<Ticket> Singles = new(TicketKeyComparer.Instance);

    /// <summary>Start tag of the latest dispatch: the model's virtual time.</summary>
    public double VirtualTime;
}

internal sealed class TicketKeyComparer : IComparer<Ticket>
{
    public static readonly TicketKeyComparer Instance = new();

    public int Compare(Ticket? x, Ticket? y) => x!.CompareKey(y!);
}

/// <summary>A backend's slots as the scheduler accounts them.</summary>
internal sealed class BackendState
{
    public BackendState(int index, BackendDefinition definition, DateTimeOffset now)
    {
        Index = index;
        Name = definition.Name;
        Slots = definition.Slots;
        Models = [.. definition.Models.Distinct(StringComparer.Ordinal)];
        _lastChange = now;
    }

    public int Index { get; }

    public string Name { get; }

    public int Slots { get; }

    public string[] Models { get; }

    public bool Healthy = true;

    public readonly List<SlotLease> Running = [];

    public long Completed;

    private double _busySlotSeconds;
    private DateTimeOffset _lastChange;

    public int Free => Healthy ? Slots - Running.Count : 0;

    /// <summary>Adds the slot-time used since the last change; call before the running count changes.</summary>
    public void Account(DateTimeOffset now)
    {
        _busySlotSeconds += Running.Count * (now - _lastChange).TotalSeconds;
        _lastChange = now;
    }

    public double BusySlotSeconds(DateTimeOffset now) => _busySlotSeconds + (Running.Count * (now - _lastChange).TotalSeconds);
}
