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
        Owner = request.Owner;
        Model = request.Model;
        Weight = request.Weight;
        PromptTokens = request.PromptTokens;
        MaxOutputTokens = request.MaxOutputTokens;
        Sequence = sequence;
        Cost = cost;
        ExpectedOutputTokens = expectedOutputTokens;
        ArrivedAt = arrivedAt;
        Deadline = deadline;
        TreePriority = (uint)HashCode.Combine(sequence, request.Id);
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
    public DateTimeOffset ArrivedAt { get; }

    /// <summary>When it stops waiting.</summary>
    public DateTimeOffset Deadline { get; internal set; }

    /// <summary>Where it is in its life.</summary>
    public TicketState State { get; internal set; }

    /// <summary>How it ended, once <see cref="State"/> is <see cref="TicketState.Ended"/>.</summary>
    public TicketOutcome? Outcome { get; internal set; }

    /// <summary>The backend it runs (or last ran) on.</summary>
    public string? Backend { get; internal set; }

    /// <summary>When it first got a slot.</summary>
    public DateTimeOffset? FirstDispatchedAt { get; internal set; }

    /// <summary>When it ended.</summary>
    public DateTimeOffset? EndedAt { get; internal set; }

    /// <summary>How many times it was given a slot.</summary>
    public int Attempts { get; internal set; }

    /// <summary>
    /// Cancelled when the ticket is cancelled while it runs (an operator or its owner stopped it): the holder links
    /// it into the upstream call so the backend stops generating.
    /// </summary>
    public CancellationToken Aborted => AbortSource.Token;

    /// <summary>Completes when the wait ends: a slot, or the outcome that ended the ticket.</summary>
    public Task<Dispatch> Dispatched => DispatchSource.Task;

    // Fair-queue key: the start tag, then arrival order.
    internal double Tag;
    internal double FinishTag;

    // Treap links of the model queue this ticket waits in.
    internal Ticket? Left;
    internal Ticket? Right;
    internal int Size = 1;
    internal readonly uint TreePriority;

    internal TimeSpan? RequestedMaxWait;
    internal LinkedListNode<Ticket>? OwnerNode;
    internal SlotLease? Lease;
    internal int ExcludedBackend = -1;
    internal readonly CancellationTokenSource AbortSource = new();
    internal TaskCompletionSource<Dispatch> DispatchSource = NewDispatchSource();

    internal static TaskCompletionSource<Dispatch> NewDispatchSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal int CompareKey(Ticket other)
    {
        int byTag = Tag.CompareTo(other.Tag);
        return byTag != 0 ? byTag : Sequence.CompareTo(other.Sequence);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Id} ({Owner}, {Model}, {State})";
}
