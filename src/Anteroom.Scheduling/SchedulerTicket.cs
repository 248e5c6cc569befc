namespace Anteroom.Scheduling;

/// <summary>
/// A ticket of the in-process <see cref="Scheduler"/>: the fair-queue key, the owner's lane and the waiter, all
/// changed under the scheduler's lock.
/// </summary>
internal sealed class SchedulerTicket : Ticket
{
    internal SchedulerTicket(TicketRequest request, long sequence, double cost, double expectedOutputTokens, DateTimeOffset arrivedAt, DateTimeOffset deadline)
        : base(request, sequence, arrivedAt, deadline)
    {
        IdHash = LiveTickets.Hash(request.Id);
        Cost = cost;
        ExpectedOutputTokens = expectedOutputTokens;
    }

    /// <summary>Estimated cost in weighted tokens (prompt plus weighted expected output).</summary>
    public double Cost { get; }

    /// <summary>Output tokens expected when it was admitted.</summary>
    public double ExpectedOutputTokens { get; }

    /// <inheritdoc />
    public override CancellationToken Aborted => AbortSource.Token;

    /// <summary>Completes when the wait ends: a slot, or the outcome that ended the ticket.</summary>
    public Task<Dispatch> Dispatched => DispatchSource.Task;

    // Kept so that ending a ticket finds its slot among the live tickets without reading the id again.
    internal readonly int IdHash;

    // Fair-queue key: the start tag, then arrival order.
    internal double Tag;

    /// <summary>The owner's counter after this ticket: its start tag plus its cost per unit of weight.</summary>
    internal double FinishTag => Tag + (Cost / Weight);

    /// <summary>What the request asked to wait at most; zero or less means the scheduler's limit, as null does.</summary>
    internal TimeSpan RequestedMaxWait;
    internal SchedulerLease? Lease;
    internal int ExcludedBackend = -1;
    internal TaskCompletionSource<Dispatch> DispatchSource = NewDispatchSource();

    // The owner's lane for this model (set on admission) and the ticket's neighbours in it while it waits.
    internal UserLane? Lane;
    internal SchedulerTicket? LanePrevious;
    internal SchedulerTicket? LaneNext;

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
    internal int CompareKey(SchedulerTicket other)
    {
        int byTag = TicketTree.SortTag(Tag).CompareTo(TicketTree.SortTag(other.Tag));
        return byTag != 0 ? byTag : Sequence.CompareTo(other.Sequence);
    }
}
