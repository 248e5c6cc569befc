namespace Anteroom.Scheduling;

/// <summary>A slot of the in-process <see cref="Scheduler"/>: ending it goes straight to the scheduler's lock.</summary>
internal sealed class SchedulerLease : SlotLease
{
    private readonly Scheduler _scheduler;

    internal SchedulerLease(Scheduler scheduler, SchedulerTicket ticket, int backendIndex, string backendName, DateTimeOffset startedAt, bool isTrial)
        : base(ticket, backendName, startedAt, isTrial)
    {
        _scheduler = scheduler;
        Holder = ticket;
        BackendIndex = backendIndex;
    }

    /// <summary>The ticket holding the slot, as the scheduler keeps it.</summary>
    internal SchedulerTicket Holder { get; }

    internal int BackendIndex { get; }

    /// <inheritdoc />
    protected override DateTimeOffset Now => _scheduler.Now;

    /// <inheritdoc />
    protected override void OnEnded(TicketOutcome outcome, ServiceSample? sample) => _scheduler.EndRunning(this, outcome, sample);

    /// <inheritdoc />
    protected override bool OnRequeued() => _scheduler.Requeue(this);
}
