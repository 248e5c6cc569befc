namespace Anteroom.Scheduling;

/// <summary>
/// <see cref="IRequestQueue"/> over the in-process <see cref="Scheduler"/>. Every answer is ready when the call
/// returns (the scheduler does its work under its lock), so the value tasks are already complete and cost nothing;
/// the cancellation tokens only matter to the waits.
/// </summary>
internal sealed class InProcessRequestQueue(Scheduler scheduler) : IRequestQueue, IDisposable
{
    public Scheduler Scheduler => scheduler;

    public SchedulingPolicy Policy => scheduler.Policy;

    public IReadOnlyCollection<string> Models => scheduler.Models;

    public long ChangeVersion => scheduler.ChangeVersion;

    public ValueTask<Admission> AdmitAsync(TicketRequest request, CancellationToken cancellationToken = default) =>
        new(scheduler.Admit(request));

    public ValueTask<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default) =>
        new(scheduler.WaitForSlotAsync(ticket, cancellationToken));

    // A holder here is a request of this process, which cannot outlive it: no ticket is ever left to adopt. The
    // answer is a completed value task with no allocation.
    public ValueTask<Ticket?> AdoptAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        return new((Ticket?)null);
    }

    public ValueTask<bool> CancelAsync(string id, CancellationToken cancellationToken = default) =>
        new(scheduler.Cancel(id));

    public ValueTask<WaitingPlace?> GetPlaceAsync(string id, CancellationToken cancellationToken = default) =>
        new(scheduler.GetPlace(id));

    public ValueTask WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default) =>
        new(scheduler.WaitForChangeAsync(seenVersion, cancellationToken));

    public ValueTask<QueueCounts> GetCountsAsync(CancellationToken cancellationToken = default) =>
        new(scheduler.Counts());

    public ValueTask<SchedulerSnapshot> GetSnapshotAsync(CancellationToken cancellationToken = default) =>
        new(scheduler.Snapshot());

    public ValueTask<IReadOnlyList<WaitingTicket>> GetWaitingAsync(int limitPerModel = int.MaxValue, CancellationToken cancellationToken = default) =>
        new(scheduler.GetWaiting(limitPerModel)
            .Select(w => new WaitingTicket(w.Ticket.Id, w.Ticket.Owner, w.Ticket.Model, w.Ticket.Weight, w.Position, w.Ticket.ArrivedAt))
            .ToList());

    public ValueTask<IReadOnlyList<RunningTicket>> GetRunningAsync(CancellationToken cancellationToken = default) =>
        new(scheduler.GetRunning()
            .Select(l => new RunningTicket(l.Ticket.Id, l.Ticket.Owner, l.Ticket.Model, l.Backend, l.StartedAt, l.Ticket.Attempts))
            .ToList());

    public ValueTask<TimeSpan?> EstimateWaitAsync(string model, CancellationToken cancellationToken = default) =>
        new(scheduler.EstimateWait(model));

    public ValueTask SetBackendHealthAsync(string backend, bool healthy, CancellationToken cancellationToken = default)
    {
        scheduler.SetBackendHealth(backend, healthy);
        return ValueTask.CompletedTask;
    }

    public ValueTask AllowBackendTrialAsync(string backend, CancellationToken cancellationToken = default)
    {
        scheduler.AllowBackendTrial(backend);
        return ValueTask.CompletedTask;
    }

    public ValueTask<int> ForgetIdleUsersAsync(CancellationToken cancellationToken = default) =>
        new(scheduler.ForgetIdleUsers());

    public void Dispose() => scheduler.Dispose();
}
