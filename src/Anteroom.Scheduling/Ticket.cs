namespace Anteroom.Scheduling;

/// <summary>
/// An admitted request as its holder sees it: what was admitted, and where it is in its life. The queue that
/// admitted it owns every changing field; holders read them for display and act through <see cref="IRequestQueue"/>
/// and <see cref="SlotLease"/>.
/// </summary>
/// <remarks>
/// Abstract so that each <see cref="IRequestQueue"/> keeps its own bookkeeping beside it: the in-process queue
/// links tickets into its trees, a queue in a shared store keeps a local mirror of the stored entry. The holder is
/// always in the process that admitted the ticket (it holds the client's connection), so a handle object is
/// something every implementation can give; views of other holders' tickets are values
/// (<see cref="WaitingTicket"/>, <see cref="RunningTicket"/>).
/// </remarks>
public abstract class Ticket
{
    // Instants are kept as UTC ticks (the scheduler's clock is UTC): a ticket is allocated for every admission, and
    // at a million waiting tickets its size is memory and, on a fresh heap page, page faults. Ticks are never
    // negative, so NotYet marks an instant that has not happened.
    private const long NotYet = -1;
    private readonly long _arrivedAt;
    private long _firstDispatchedAt = NotYet;
    private long _endedAt = NotYet;

    /// <summary>Creates a ticket for an admitted request.</summary>
    protected Ticket(TicketRequest request, long sequence, DateTimeOffset arrivedAt, DateTimeOffset deadline)
    {
        ArgumentNullException.ThrowIfNull(request);
        Id = request.Id;
        Owner = request.Owner;
        Model = request.Model;
        Weight = request.Weight;
        PromptTokens = request.PromptTokens;
        MaxOutputTokens = request.MaxOutputTokens;
        Sequence = sequence;
        _arrivedAt = arrivedAt.UtcTicks;
        DeadlineTicks = deadline.UtcTicks;
    }

    /// <summary>The caller's id for this request.</summary>
    public string Id { get; }

    /// <summary>The identity it counts against.</summary>
    public string Owner { get; }

    /// <summary>The model it needs.</summary>
    public string Model { get; }

    /// <summary>Fair-share weight of its owner.</summary>
    public double Weight { get; }

    /// <summary>Estimated prompt tokens.</summary>
    public int PromptTokens { get; }

    /// <summary>Output cap the caller asked for.</summary>
    public int? MaxOutputTokens { get; }

    /// <summary>Arrival order, unique and increasing.</summary>
    public long Sequence { get; }

    /// <summary>When it was admitted.</summary>
    public DateTimeOffset ArrivedAt => new(_arrivedAt, TimeSpan.Zero);

    /// <summary>When it stops waiting.</summary>
    public DateTimeOffset Deadline
    {
        get => new(DeadlineTicks, TimeSpan.Zero);
        protected internal set => DeadlineTicks = value.UtcTicks;
    }

    /// <summary>Where it is in its life.</summary>
    public TicketState State { get; protected internal set; }

    /// <summary>How it ended, once <see cref="State"/> is <see cref="TicketState.Ended"/>.</summary>
    public TicketOutcome? Outcome { get; protected internal set; }

    /// <summary>The backend it runs (or last ran) on.</summary>
    public string? Backend { get; protected internal set; }

    /// <summary>When it first got a slot.</summary>
    public DateTimeOffset? FirstDispatchedAt
    {
        get => _firstDispatchedAt == NotYet ? null : new DateTimeOffset(_firstDispatchedAt, TimeSpan.Zero);
        protected internal set => _firstDispatchedAt = value?.UtcTicks ?? NotYet;
    }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt
    {
        get => _endedAt == NotYet ? null : new DateTimeOffset(_endedAt, TimeSpan.Zero);
        protected internal set => _endedAt = value?.UtcTicks ?? NotYet;
    }

    /// <summary>How many times it was given a slot.</summary>
    public int Attempts { get; protected internal set; }

    /// <summary>
    /// Cancelled when the ticket is cancelled while it runs (an operator or its owner stopped it): the holder links
    /// it into the upstream call so the backend stops generating.
    /// </summary>
    public abstract CancellationToken Aborted { get; }

    internal long DeadlineTicks;

    /// <inheritdoc />
    public override string ToString() => $"{Id} ({Owner}, {Model}, {State})";
}
