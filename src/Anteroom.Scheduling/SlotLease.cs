namespace Anteroom.Scheduling;

/// <summary>
/// A slot on a backend, held by one ticket for one dispatch attempt. End it exactly once: <see cref="Complete"/>,
/// <see cref="Fail"/>, <see cref="Cancel"/>, <see cref="TryRequeue"/> (a failure before the first token) or
/// <see cref="Dispose"/>, which ends a lease not yet ended as cancelled — so a <c>using</c> frees the slot on every
/// path. Calls after the first end do nothing.
/// </summary>
/// <remarks>
/// The exactly-once rule lives here, not in each implementation: an implementation only says what ending means
/// (<see cref="OnEnded"/>, <see cref="OnRequeued"/>). Ending never waits, as disposing a rate limiter's lease never
/// waits: a queue in a shared store records the end locally at once and settles it in the store in the
/// background, with the store's lease expiry as the backstop for a process that dies first.
/// </remarks>
public abstract class SlotLease : IDisposable
{
    // Ticks are never negative, so NotYet marks a first token that has not come.
    private const long NotYet = -1;

    // Instants as UTC ticks (the scheduler's clock is UTC), to keep a lease per dispatch small.
    private readonly long _startedAt;
    private long _firstTokenAt = NotYet;
    private int _ended;

    /// <summary>Creates a lease of a slot on <paramref name="backend"/> for <paramref name="ticket"/>.</summary>
    /// <param name="ticket">The ticket holding the slot.</param>
    /// <param name="backend">The backend the slot belongs to.</param>
    /// <param name="startedAt">When the slot was given.</param>
    /// <param name="isTrial">Whether the slot is an unhealthy backend's one trial slot (see <see cref="IsTrial"/>).</param>
    protected SlotLease(Ticket ticket, string backend, DateTimeOffset startedAt, bool isTrial = false)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ArgumentException.ThrowIfNullOrEmpty(backend);
        Ticket = ticket;
        Backend = backend;
        IsTrial = isTrial;
        _startedAt = startedAt.UtcTicks;
    }

    /// <summary>The ticket holding the slot.</summary>
    public Ticket Ticket { get; }

    /// <summary>The backend the slot belongs to.</summary>
    public string Backend { get; }

    /// <summary>
    /// Whether this is an unhealthy backend's one trial slot (see <see cref="IRequestQueue.AllowBackendTrialAsync"/>):
    /// its outcome is the verdict on the backend, and if it ends without one the trial must be allowed again. Set
    /// once, by the implementation that gives the slot: a queue in another assembly has to be able to say it too.
    /// </summary>
    public bool IsTrial { get; }

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

    /// <summary>Whether the lease has ended (by any of its ends).</summary>
    public bool IsEnded => Volatile.Read(ref _ended) != 0;

    /// <summary>Records the first token (for time-to-first-token estimates); later calls do nothing.</summary>
    public void MarkFirstToken() => Interlocked.CompareExchange(ref _firstTokenAt, Now.UtcTicks, NotYet);

    /// <summary>The queue's clock, which times the first token as it times everything else.</summary>
    protected abstract DateTimeOffset Now { get; }

    /// <summary>Ends the ticket as completed and records what the generation measured.</summary>
    public void Complete(int promptTokens, int outputTokens)
    {
        if (TryEnd())
        {
            OnEnded(TicketOutcome.Completed, new ServiceSample(promptTokens, outputTokens));
        }
    }

    /// <summary>Ends the ticket as failed.</summary>
    public void Fail()
    {
        if (TryEnd())
        {
            OnEnded(TicketOutcome.Failed, null);
        }
    }

    /// <summary>Ends the ticket as cancelled (its holder left or it was stopped).</summary>
    public void Cancel()
    {
        if (TryEnd())
        {
            OnEnded(TicketOutcome.Cancelled, null);
        }
    }

    /// <summary>
    /// After a backend failure before the first token: frees the slot and puts the ticket back at the head of its
    /// queue, preferring another backend next time. Returns false (and ends the ticket as failed, or as cancelled
    /// when it was cancelled meanwhile) when the ticket has used all its attempts. On true, wait for a slot again
    /// with <see cref="IRequestQueue.WaitForSlotAsync"/>.
    /// </summary>
    public bool TryRequeue() => TryEnd() && OnRequeued();

    /// <summary>Frees the slot if the lease was not ended, counting the ticket as cancelled.</summary>
    public void Dispose()
    {
        Cancel();
        GC.SuppressFinalize(this);
    }

    /// <summary>Ends the ticket with <paramref name="outcome"/>; called once, for the lease's first end.</summary>
    /// <param name="outcome">How the ticket ended.</param>
    /// <param name="sample">What a completed generation measured; null for other outcomes.</param>
    protected abstract void OnEnded(TicketOutcome outcome, ServiceSample? sample);

    /// <summary>Frees the slot and puts the ticket back; called once, instead of <see cref="OnEnded"/>.</summary>
    /// <returns>Whether the ticket waits again; false when it has ended instead.</returns>
    protected abstract bool OnRequeued();

    private bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;
}

/// <summary>What a completed generation measured: the tokens it read and wrote.</summary>
public readonly record struct ServiceSample(int PromptTokens, int OutputTokens);
