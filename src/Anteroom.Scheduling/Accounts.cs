namespace Anteroom.Scheduling;

/// <summary>A user's standing: its tickets and, per model, its virtual token counter.</summary>
internal sealed class UserAccount
{
    // One lane per model: each model's queue has its own virtual clock, so a counter moved on one model's clock
    // means nothing on another's (a cheap request on an idle model must not wipe out a backlog's debt elsewhere).
    // Lanes stay after they empty: the counter must outlive the tickets.
    private readonly Dictionary<string, UserLane> _lanes = new(StringComparer.Ordinal);

    public UserAccount(string owner) => Owner = owner;

    public string Owner { get; }

    public int Waiting;

    public readonly List<SchedulerLease> Running = [];

    public int InFlight => Waiting + Running.Count;

    public bool IsIdle => Waiting == 0 && Running.Count == 0;

    /// <summary>
    /// Whether forgetting the account changes nothing: it holds no ticket and owes no service on any model (a
    /// returning user starts at the model's virtual time either way).
    /// </summary>
    public bool IsForgettable
    {
        get
        {
            if (!IsIdle)
            {
                return false;
            }

            foreach (var lane in _lanes.Values)
            {
                if (lane.FinishTag > lane.Queue.VirtualTime)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>The user's lane for the queue's model, made on first use.</summary>
    public UserLane Lane(ModelQueue queue)
    {
        if (!_lanes.TryGetValue(queue.Model, out var lane))
        {
            lane = new UserLane(this, queue);
            _lanes[queue.Model] = lane;
        }

        return lane;
    }

    public IEnumerable<SchedulerTicket> FirstWaitingPerModel()
    {
        foreach (var lane in _lanes.Values)
        {
            if (lane.First is { } first)
            {
                yield return first;
            }
        }
    }
}

/// <summary>
/// One user's waiting tickets for one model, oldest first, linked through the tickets themselves (no node to
/// allocate, O(1) removal), and the user's virtual counter on that model's clock.
/// </summary>
internal sealed class UserLane
{
    public UserLane(UserAccount account, ModelQueue queue)
    {
        Account = account;
        Queue = queue;
    }

    public UserAccount Account { get; }

    public ModelQueue Queue { get; }

    public SchedulerTicket? First;

    public SchedulerTicket? Last;

    public int Count;

    /// <summary>Virtual finish tag of the user's latest ticket for the model: service received (and queued) per unit of weight.</summary>
    public double FinishTag;

    /// <summary>The start tag of the user's newest waiting ticket for the model (the largest: tags only grow).</summary>
    public double LastWaitingTag => Last?.Tag ?? double.NegativeInfinity;

    /// <summary>Adds a waiting ticket and keeps the model's set of sole waiting tickets in step.</summary>
    public void Add(SchedulerTicket ticket, bool atFront)
    {
        var singles = Queue.Singles;
        if (Count == 1)
        {
            singles.Remove(First!);
        }

        if (First is null)
        {
            First = Last = ticket;
        }
        else if (atFront)
        {
            ticket.LaneNext = First;
            First.LanePrevious = ticket;
            First = ticket;
        }
        else
        {
            ticket.LanePrevious = Last;
            Last!.LaneNext = ticket;
            Last = ticket;
        }

        if (++Count == 1)
        {
            singles.Add(ticket);
        }

        Account.Waiting++;
    }

    public void Remove(SchedulerTicket ticket)
    {
        var singles = Queue.Singles;
        if (Count == 1)
        {
            singles.Remove(ticket);
        }

        var previous = ticket.LanePrevious;
        var next = ticket.LaneNext;
        if (previous is null)
        {
            First = next;
        }
        else
        {
            previous.LaneNext = next;
        }

        if (next is null)
        {
            Last = previous;
        }
        else
        {
            next.LanePrevious = previous;
        }

        ticket.LanePrevious = ticket.LaneNext = null;
        if (--Count == 1)
        {
            singles.Add(First!);
        }

        Account.Waiting--;
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
    /// <remarks>Only the last of them is ever asked for; a ticket tree gives it without allocating per change.</remarks>
    public readonly TicketTree Singles = new();

    /// <summary>Start tag of the latest dispatch: the model's virtual time.</summary>
    public double VirtualTime;
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

    /// <summary>
    /// An unhealthy backend may take one ticket to try whether it works again; taking it uses the trial up, so a
    /// trial never lets more than one ticket through.
    /// </summary>
    public bool Trial;

    public readonly List<SchedulerLease> Running = [];

    public long Completed;

    private double _busySlotSeconds;
    private DateTimeOffset _lastChange;

    public int Free => Healthy ? Slots - Running.Count : Trial ? Math.Min(1, Slots - Running.Count) : 0;

    /// <summary>The slots new tickets may count on: all when healthy, the one trial slot on trial, none otherwise.</summary>
    public int ServingSlots => Healthy ? Slots : Trial ? 1 : 0;

    /// <summary>Adds the slot-time used since the last change; call before the running count changes.</summary>
    public void Account(DateTimeOffset now)
    {
        _busySlotSeconds += Running.Count * (now - _lastChange).TotalSeconds;
        _lastChange = now;
    }

    public double BusySlotSeconds(DateTimeOffset now) => _busySlotSeconds + (Running.Count * (now - _lastChange).TotalSeconds);
}
