namespace Anteroom.Scheduling;

/// <summary>Where a ticket is in its life.</summary>
public enum TicketState
{
    /// <summary>In the queue.</summary>
    Waiting,

    /// <summary>Holding a slot on a backend.</summary>
    Running,

    /// <summary>Ended; see <see cref="TicketOutcome"/>.</summary>
    Ended,
}

/// <summary>How a ticket ended. Every admitted ticket ends exactly once.</summary>
public enum TicketOutcome
{
    /// <summary>The backend finished the generation.</summary>
    Completed,

    /// <summary>A backend failure that could not be retried.</summary>
    Failed,

    /// <summary>The holder left or asked to stop.</summary>
    Cancelled,

    /// <summary>Waited past its deadline.</summary>
    TimedOut,
}

/// <summary>Why an arrival was refused.</summary>
public enum RefusalReason
{
    /// <summary>The global queue is full.</summary>
    QueueFull,

    /// <summary>The caller already has as many tickets waiting as allowed.</summary>
    UserQueueFull,

    /// <summary>The caller already has as many tickets admitted and unfinished as allowed.</summary>
    UserInFlightLimit,

    /// <summary>No backend serves the model.</summary>
    UnknownModel,

    /// <summary>Backends serve the model, but none is healthy.</summary>
    NoHealthyBackend,

    /// <summary>The estimated wait exceeds what the request may wait.</summary>
    WaitTooLong,

    /// <summary>A ticket with the same id is already admitted.</summary>
    DuplicateId,
}

/// <summary>A refused arrival: why, and when trying again is worthwhile (null: not by waiting).</summary>
public sealed record Refusal(RefusalReason Reason, string Message, TimeSpan? RetryAfter);

/// <summary>The answer to an arrival: an admitted <see cref="Ticket"/> or a <see cref="Refusal"/>.</summary>
public readonly struct Admission
{
    private Admission(Ticket? ticket, Refusal? refusal)
    {
        Ticket = ticket;
        Refusal = refusal;
    }

    /// <summary>The admitted ticket.</summary>
    public Ticket? Ticket { get; }

    /// <summary>Why the arrival was refused.</summary>
    public Refusal? Refusal { get; }

    /// <summary>Whether a ticket was admitted.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(Ticket))]
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(false, nameof(Refusal))]
    public bool IsAdmitted => Ticket is not null;

    /// <summary>An admission of <paramref name="ticket"/>.</summary>
    public static Admission Admitted(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return new(ticket, null);
    }

    /// <summary>A refusal.</summary>
    public static Admission Refused(Refusal refusal)
    {
        ArgumentNullException.ThrowIfNull(refusal);
        return new(null, refusal);
    }
}

/// <summary>The end of a wait: a slot (a <see cref="SlotLease"/>) or the outcome that ended the ticket instead.</summary>
public readonly struct Dispatch
{
    private Dispatch(SlotLease? lease, TicketOutcome outcome)
    {
        Lease = lease;
        Outcome = outcome;
    }

    /// <summary>The slot the ticket now holds; null when the wait ended the ticket.</summary>
    public SlotLease? Lease { get; }

    /// <summary>When <see cref="Lease"/> is null: how the ticket ended (cancelled or timed out).</summary>
    public TicketOutcome Outcome { get; }

    /// <summary>A wait that ended with a slot.</summary>
    public static Dispatch Started(SlotLease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        return new(lease, default);
    }

    /// <summary>A wait that ended the ticket instead (cancelled or timed out).</summary>
    public static Dispatch Ended(TicketOutcome outcome) => new(null, outcome);
}
