namespace Anteroom.Scheduling;

/// <summary>
/// An admitted request's place in the scheduler. The scheduler owns every mutable field and changes them under
/// its lock; holders read them for display and act through <see cref="Scheduler"/> and <see cref="SlotLease"/>.
/// </summary>
public sealed class Ticket
{
    internal Ticket(TicketRequest request, long sequence, double cost, double expectedOutputTokens, DateTimeOffset arrivedAt, DateTimeOffset deadline)
    {
        Id = request.Id;
        IdHash = LiveTickets.Hash(request.Id);
        Owner = request.Owner;
        Model = request.Model;
        Weight = request.Weight;
        PromptTokens = request.PromptTokens;
        MaxOutputTokens = request.MaxOutputTokens;
        Sequence = sequence;
        Cost = cost;
        ExpectedOutputTokens = expectedOutputTokens;
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

    /// <summary>Estimated cost in weighted tokens (prompt plus weighted expected output).</summary>
    public double Cost { get; }

    /// <summary>Output tokens expected when it was admitted.</summary>
    public double ExpectedOutputTokens { get; }

    /// <summary>When it was admitted.</summary>
    public DateTimeOffset ArrivedAt => new(_arrivedAt, TimeSpan.Zero);

    /// <summary>When it stops waiting.</summary>
    public DateTimeOffset Deadline
    {
        get => new(DeadlineTicks, TimeSpan.Zero);
        internal set => DeadlineTicks = value.UtcTicks;
    }

    /// <summary>Where it is in its life.</summary>
    public TicketState State { get; internal set; }

    /// <summary>How it ended, once <see cref="State"/> is <see cref="TicketState.Ended"/>.</summary>
    public TicketOutcome? Outcome { get; internal set; }

    /// <summary>The backend it runs (or last ran) on.</summary>
    public string? Backend { get; internal set; }

    /// <summary>When it first got a slot.</summary>
    public DateTimeOffset? FirstDispatchedAt
    {
        get => _firstDispatchedAt == NotYet ? null : new DateTimeOffset(_firstDispatchedAt, TimeSpan.Zero);
        internal set => _firstDispatchedAt = value?.UtcTicks ?? NotYet;
    }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt
    {
        get => _endedAt == NotYet ? null : new DateTimeOffset(_endedAt, TimeSpan.Zero);
        internal set => _endedAt = value?.UtcTicks ?? NotYet;
    }

    /// <summary>How many times it was given a slot.</summary>
    public int Attempts { get; internal set; }

    /// <summary>
    /// Cancelled when the ticket is cancelled while it runs (an operator or its owner stopped it): the holder links
    /// it into the upstream call so the backend stops generating.
    /// </summary>
    public CancellationToken Aborted => AbortSource.Token;

    /// <summary>Completes when the wait ends: a slot, or the outcome that ended the ticket.</summary>
    public Task<Dispatch> Dispatched => DispatchSource.Task;

    // Instants are kept as UTC ticks (the scheduler's clock is UTC): a ticket is allocated for every admission, and
    // at a million waiting tickets its size is memory and, on a fresh heap page, page faults. Ticks are never
    // negative, so NotYet marks an instant that has not happened.
    private const long NotYet = -1;
    private readonly long _arrivedAt;
    private long _firstDispatchedAt = NotYet;
    private long _endedAt = NotYet;

    internal long DeadlineTicks;

    // Kept so that ending a ticket finds its slot among the live tickets without reading the id again.
    internal readonly int IdHash;

    // Fair-queue key: the start tag, then arrival order.
    internal double Tag;

    /// <summary>The owner's counter after this ticket: its start tag plus its cost per unit of weight.</summary>
    internal double FinishTag => Tag + (Cost / Weight);

    /// <summary>What the request asked to wait at most; zero or less means the scheduler's limit, as null does.</summary>
    internal TimeSpan RequestedMaxWait;
    internal SlotLease? Lease;
    internal int ExcludedBackend = -1;
    internal TaskCompletionSource<Dispatch> DispatchSource = NewDispatchSource();

    // The owner's lane for this model (set on admission) and the ticket's neighbours in it while it waits.
    internal UserLane? Lane;
    internal Ticket? LanePrevious;
    internal Ticket? LaneNext;

    // Made on first use: most tickets are never aborted, and many finish without anyone asking for the token, so a
    // source per admitted ticket would be allocation and garbage for nothing.
    private CancellationTokenSource? _abortSource;

    internal CancellationTokenSource AbortSource => Volatile.Read(ref _abortSource) ?? CreateAbortSource();

    /// <summary>Whether an abort was signalled, without making a source just to ask.</summary>
    internal bool AbortRequested => Volatile.Read(ref _abortSource)?.IsCancellationRequested == true;

    internal static TaskCompletionSource<Dispatch> NewDispatchSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The holder (asking for the token) and the scheduler (aborting) may race to make it; both must get the same one.
    private CancellationTokenSource CreateAbortSource()
    {
        var created = new CancellationTokenSource();
        return Interlocked.CompareExchange(ref _abortSource, created, null) ?? created;
    }

    /// <summary>The order of the queues: start tag (as <see cref="TicketTree.SortTag"/> orders it), then arrival.</summary>
    internal int CompareKey(Ticket other)
    {
        int byTag = TicketTree.SortTag(Tag).CompareTo(TicketTree.SortTag(other.Tag));
        return byTag != 0 ? byTag : Sequence.CompareTo(other.Sequence);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Id} ({Owner}, {Model}, {State})";
}
