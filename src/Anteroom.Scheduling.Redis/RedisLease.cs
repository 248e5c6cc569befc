namespace Anteroom.Scheduling.Redis;

/// <summary>
/// A slot held through the <see cref="RedisRequestQueue"/>: ending it is recorded on the local ticket at once and
/// settled in the store in the background; the replica's lease in the store frees the slot if the process dies
/// first.
/// </summary>
internal sealed class RedisLease : SlotLease
{
    private readonly RedisRequestQueue _queue;

    internal RedisLease(RedisRequestQueue queue, RedisTicket ticket, string backend, DateTimeOffset startedAt, bool isTrial, int attempt)
        : base(ticket, backend, startedAt, isTrial)
    {
        _queue = queue;
        Holder = ticket;
        Attempt = attempt;
    }

    /// <summary>The ticket holding the slot, as the queue mirrors it.</summary>
    internal RedisTicket Holder { get; }

    /// <summary>Which dispatch of the ticket this is: the store ends a run only when it is the one it knows.</summary>
    internal int Attempt { get; }

    /// <inheritdoc />
    protected override DateTimeOffset Now => _queue.Now;

    /// <inheritdoc />
    protected override void OnEnded(TicketOutcome outcome, ServiceSample? sample) => _queue.EndLease(this, outcome, sample);

    /// <inheritdoc />
    protected override bool OnRequeued() => _queue.Requeue(this);
}
