namespace Anteroom.Scheduling;

/// <summary>
/// The request queue as the gateway sees it: admit or refuse at once, wait for a slot and hold it as a lease,
/// cancel, tell a waiting ticket its place, announce changes, count. The in-process <see cref="Scheduler"/> is the
/// first implementation; one over a store shared by several gateway replicas is meant to be the next.
/// </summary>
/// <remarks>
/// <para>
/// Every operation is asynchronous because a shared store answers over the network; the in-process queue answers
/// under one short lock and its value tasks are already complete, so the seam costs it no allocation.
/// Refusals and endings are values (<see cref="Admission"/>, <see cref="Dispatch"/>, <see cref="TicketOutcome"/>);
/// exceptions are for misuse (a ticket from another queue, an unknown backend name).
/// </para>
/// <para>
/// What crosses the seam: the holder of a request gets a <see cref="Ticket"/> handle on admission and a
/// <see cref="SlotLease"/> on dispatch. Both are abstract classes the implementation derives from rather than ids,
/// because the holder is always in the process that admitted the request (it holds the client's connection) and
/// needs what only a handle gives cheaply: the abort token to link into the upstream call, the lease to end
/// exactly once, and the state to read without a round trip. Everything about other holders' tickets — listings,
/// places, cancellation by an operator or a reconnecting client — goes by id and comes back as immutable values
/// (<see cref="WaitingTicket"/>, <see cref="RunningTicket"/>, <see cref="WaitingPlace"/>,
/// <see cref="SchedulerSnapshot"/>), which a shared store can produce for tickets held by any replica. A waiting
/// ticket whose holder died with its replica gets a new holder, in the process its client reconnected to, through
/// <see cref="AdoptAsync"/>, which hands that process a handle of its own.
/// </para>
/// <para>
/// Contract, which every implementation's tests check: an admitted ticket ends exactly once (completed, failed,
/// cancelled or timed out); no backend runs more tickets than its slots; no slot stays idle while a ticket for one
/// of its models waits on a healthy backend; a user's tickets for one model run in arrival order; a ticket that is
/// its owner's only waiting ticket for its model never sees its position grow; counts add up.
/// </para>
/// </remarks>
public interface IRequestQueue
{
    /// <summary>The scheduling policy in force.</summary>
    SchedulingPolicy Policy { get; }

    /// <summary>The models some backend serves.</summary>
    IReadOnlyCollection<string> Models { get; }

    /// <summary>The number of queue-change announcements so far; pass it to <see cref="WaitForChangeAsync"/>.</summary>
    long ChangeVersion { get; }

    /// <summary>Admits a ticket or refuses it at once with a reason and an estimate of when to retry.</summary>
    ValueTask<Admission> AdmitAsync(TicketRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits for the ticket's slot: a <see cref="Dispatch"/> with a lease to end exactly once, or the outcome that
    /// ended the ticket while it waited. Cancelling <paramref name="cancellationToken"/> cancels the ticket (its
    /// holder left): a waiting ticket leaves the queue at once, a running one is aborted through
    /// <see cref="Ticket.Aborted"/>. Call it again after <see cref="SlotLease.TryRequeue"/> returned true.
    /// </summary>
    ValueTask<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes over a waiting ticket whose holder is gone and whose <see cref="TicketRequest.HolderGrace"/> has not run
    /// out: from now on this queue instance holds it and <see cref="WaitForSlotAsync"/> serves it as if it had
    /// admitted it (same id, place, arrival, deadline). Null when there is no such ticket: unknown, ended, running,
    /// or held by a holder still alive.
    /// </summary>
    /// <remarks>
    /// The in-process queue always answers null at once: its holders live and die with the process, so no ticket of
    /// it ever outlives its holder.
    /// </remarks>
    ValueTask<Ticket?> AdoptAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Cancels a ticket by id: a waiting one ends now; a running one is signalled through
    /// <see cref="Ticket.Aborted"/> and ends when its holder ends the lease. Returns false when no such ticket is live.
    /// </summary>
    ValueTask<bool> CancelAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>A waiting ticket's place in its queue, or null when no ticket with that id is waiting.</summary>
    ValueTask<WaitingPlace?> GetPlaceAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Completes at the first queue-change announcement after <paramref name="seenVersion"/>. Announcements are
    /// coalesced, so read <see cref="ChangeVersion"/> before what it guards and a change in between is not missed.
    /// </summary>
    ValueTask WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default);

    /// <summary>The counts now, cheap: for a gauge sampled on every change or a check per request.</summary>
    ValueTask<QueueCounts> GetCountsAsync(CancellationToken cancellationToken = default);

    /// <summary>The full statistics now, with per-model and per-backend figures and wait percentiles.</summary>
    ValueTask<SchedulerSnapshot> GetSnapshotAsync(CancellationToken cancellationToken = default);

    /// <summary>The waiting tickets in dispatch order per model, at most <paramref name="limitPerModel"/> of each.</summary>
    ValueTask<IReadOnlyList<WaitingTicket>> GetWaitingAsync(int limitPerModel = int.MaxValue, CancellationToken cancellationToken = default);

    /// <summary>The tickets holding slots now.</summary>
    ValueTask<IReadOnlyList<RunningTicket>> GetRunningAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// How long a request for <paramref name="model"/> arriving now would wait, or null when no healthy backend
    /// serves it: what a refusal or a timeout tells its caller to wait before trying again.
    /// </summary>
    ValueTask<TimeSpan?> EstimateWaitAsync(string model, CancellationToken cancellationToken = default);

    /// <summary>Marks a backend healthy or not; an unhealthy backend gets no new tickets.</summary>
    ValueTask SetBackendHealthAsync(string backend, bool healthy, CancellationToken cancellationToken = default);

    /// <summary>
    /// Lets one ticket through to an unhealthy backend, to try whether it works again: the next ticket its models'
    /// queues hold, or the next arrival for them. Whatever comes of it is told with
    /// <see cref="SetBackendHealthAsync"/>. No effect on a healthy backend.
    /// </summary>
    ValueTask AllowBackendTrialAsync(string backend, CancellationToken cancellationToken = default);

    /// <summary>
    /// Drops the accounts of users who hold no ticket and owe no service, so memory follows the users who are
    /// active or in debt. Returns how many were dropped. Call it now and then.
    /// </summary>
    ValueTask<int> ForgetIdleUsersAsync(CancellationToken cancellationToken = default);
}
