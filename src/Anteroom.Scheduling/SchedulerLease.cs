namespace Anteroom.Scheduling;

/// <summary>A slot of the in-process <see cref="Scheduler"/>: ending it goes straight to the scheduler's lock.</summary>
internal sealed class SchedulerLease : SlotLease
{
    // Ticks are never negative, so NotYet marks a first token that has not come.
    private const long NotYet = -1;
    private readonly Scheduler _scheduler;
    private long _firstTokenAt = NotYet;

    internal SchedulerLease(Scheduler scheduler, SchedulerTicket ticket, int backendIndex, string backendName, DateTimeOffset startedAt, bool isTrial)
        : base(ticket, backendName, startedAt, isTrial)
    {
        _scheduler = scheduler;
        Holder = ticket;
        BackendIndex = backendIndex;
    }

    /// <inheritdoc />
    public override DateTimeOffset? FirstTokenAt
    {
        get
        {
            long ticks = Volatile.Read(ref _firstTokenAt);
            return ticks == NotYet ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>The ticket holding the slot, as the scheduler keeps it.</summary>
    internal SchedulerTicket Holder { get; }

    internal int BackendIndex { get; }

    /// <inheritdoc />
    public override void MarkFirstToken() => Interlocked.CompareExchange(ref _firstTokenAt, _scheduler.Now.UtcTicks, NotYet);

    /// <inheritdoc />
    protected override void OnEnded(TicketOutcome outcome, ServiceSample? sample) => _scheduler.EndRunning(this, outcome, sample);

    /// <inheritdoc />
    protected override bool OnRequeued() => _scheduler.Requeue(this);
}
