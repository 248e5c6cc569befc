namespace Anteroom.Scheduling;

/// <summary>
/// A slot on a backend, held by one ticket for one dispatch attempt. End it exactly once: <see cref="Complete"/>,
/// <see cref="Fail"/>, <see cref="TryRequeue"/> (a failure before the first token) or <see cref="Dispose"/>,
/// which ends a lease not yet ended as cancelled — so a <c>using</c> frees the slot on every path.
/// </summary>
public sealed class SlotLease : IDisposable
{
    // Instants as UTC ticks (the scheduler's clock is UTC), to keep a lease per dispatch small; ticks are never
    // negative, so NotYet marks a first token that has not come.
    private const long NotYet = -1;
    private readonly Scheduler _scheduler;
    private readonly long _startedAt;
    private long _firstTokenAt = NotYet;
    private int _ended;

    internal SlotLease(Scheduler scheduler, Ticket ticket, int backendIndex, string backendName, DateTimeOffset startedAt)
    {
        _scheduler = scheduler;
        Ticket = ticket;
        BackendIndex = backendIndex;
        Backend = backendName;
        _startedAt = startedAt.UtcTicks;
    }

    /// <summary>The ticket holding the slot.</summary>
    public Ticket Ticket { get; }

    /// <summary>The backend the slot belongs to.</summary>
    public string Backend { get; }

    /// <summary>
    /// Whether this is an unhealthy backend's one trial slot (see <see cref="Scheduler.AllowBackendTrial"/>): its
    /// outcome is the verdict on the backend, and if it ends without one the trial must be allowed again.
    /// </summary>
    public bool IsTrial { get; internal init; }

    /// <summary>When the slot was given.</summary>
    public DateTimeOffset StartedAt => new(_startedAt, TimeSpan.Zero);

    /// <summary>When the first token arrived, once it has.</summary>
    public DateTimeOffset? FirstTokenAt
    {
        get
        {
            long ticks = Volatile.Read(ref _firstTokenAt);
            return ticks == NotYet ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    internal int BackendIndex { get; }

    internal bool IsEnded => Volatile.Read(ref _ended) != 0;

    /// <summary>Records the first token (for time-to-first-token estimates); later calls do nothing.</summary>
    public void MarkFirstToken() => Interlocked.CompareExchange(ref _firstTokenAt, _scheduler.Now.UtcTicks, NotYet);

    /// <summary>Ends the ticket as completed and records what the generation measured.</summary>
    public void Complete(int promptTokens, int outputTokens)
    {
        if (TryEnd())
        {
            _scheduler.EndRunning(this, TicketOutcome.Completed, new ServiceSample(promptTokens, outputTokens));
        }
    }

    /// <summary>Ends the ticket as failed.</summary>
    public void Fail()
    {
        if (TryEnd())
        {
            _scheduler.EndRunning(this, TicketOutcome.Failed, null);
        }
    }

    /// <summary>Ends the ticket as cancelled (its holder left or it was stopped).</summary>
    public void Cancel()
    {
        if (TryEnd())
        {
            _scheduler.EndRunning(this, TicketOutcome.Cancelled, null);
        }
    }

    /// <summary>
    /// After a backend failure before the first token: frees the slot and puts the ticket back at the head of its
    /// queue, preferring another backend next time. Returns false (and ends the ticket as failed) when the ticket
    /// has used all its attempts or was cancelled meanwhile. On true, await <see cref="Ticket.Dispatched"/> again.
    /// </summary>
    public bool TryRequeue()
    {
        if (!TryEnd())
        {
            return false;
        }

        return _scheduler.Requeue(this);
    }

    /// <summary>Frees the slot if the lease was not ended, counting the ticket as cancelled.</summary>
    public void Dispose() => Cancel();

    private bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;
}

internal readonly record struct ServiceSample(int PromptTokens, int OutputTokens);
