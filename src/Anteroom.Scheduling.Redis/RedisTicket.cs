namespace Anteroom.Scheduling.Redis;

/// <summary>
/// A ticket of the <see cref="RedisRequestQueue"/> as its holder's replica mirrors it: the stored entry is the
/// truth, and this copy follows it through the events the store's scripts send to the holding replica. Changed
/// under the queue's local lock.
/// </summary>
internal sealed class RedisTicket : Ticket
{
    // Made on first use, as the in-process ticket's: most tickets are never aborted.
    private CancellationTokenSource? _abortSource;

    internal RedisTicket(RedisRequestQueue queue, TicketRequest request, long sequence, DateTimeOffset arrivedAt, TimeSpan maxWait, string store)
        : base(request, sequence, arrivedAt, arrivedAt + maxWait)
    {
        Queue = queue;
        MaxWait = maxWait;
        Store = store;
    }

    internal RedisRequestQueue Queue { get; }

    /// <summary>The id of the store that admitted it: once the queue uses another, the store no longer knows it.</summary>
    internal string Store { get; }

    /// <summary>How long it may wait, each time it waits (a requeue waits afresh).</summary>
    internal TimeSpan MaxWait { get; }

    /// <summary>Completes when the current wait ends: a slot, or the outcome that ended the ticket.</summary>
    internal TaskCompletionSource<Dispatch> DispatchSource { get; private set; } = NewDispatchSource();

    /// <summary>The lease of the current run, while it runs.</summary>
    internal RedisLease? Lease { get; private set; }

    /// <inheritdoc />
    public override CancellationToken Aborted => AbortSource.Token;

    // The holder (asking for the token) and the queue (aborting) may race to make it; both must get the same one.
    internal CancellationTokenSource AbortSource
    {
        get
        {
            if (Volatile.Read(ref _abortSource) is { } source)
            {
                return source;
            }

            var created = new CancellationTokenSource();
            return Interlocked.CompareExchange(ref _abortSource, created, null) ?? created;
        }
    }

    /// <summary>Whether an abort was signalled, without making a source just to ask.</summary>
    internal bool AbortRequested => Volatile.Read(ref _abortSource)?.IsCancellationRequested == true;

    /// <summary>
    /// Takes up where the stored entry is, for a ticket adopted from a replica that died: its deadline (a requeue
    /// set it afresh), and the runs it had before it was requeued.
    /// </summary>
    internal void Resume(DateTimeOffset deadline, int attempts, DateTimeOffset? firstDispatchedAt, string? backend)
    {
        Deadline = deadline;
        Attempts = attempts;
        FirstDispatchedAt = firstDispatchedAt;
        Backend = backend;
    }

    internal void Run(RedisLease lease, DateTimeOffset firstDispatchedAt)
    {
        State = TicketState.Running;
        Backend = lease.Backend;
        Attempts = lease.Attempt;
        FirstDispatchedAt ??= firstDispatchedAt;
        Lease = lease;
    }

    internal void WaitAgain(DateTimeOffset now)
    {
        State = TicketState.Waiting;
        Deadline = now + MaxWait;
        Lease = null;
        DispatchSource = NewDispatchSource();
    }

    internal void End(TicketOutcome outcome, DateTimeOffset at)
    {
        State = TicketState.Ended;
        Outcome = outcome;
        EndedAt = at;
    }

    private static TaskCompletionSource<Dispatch> NewDispatchSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
