namespace Anteroom.Scheduling;

/// <summary>
/// The in-process request queue: admits tickets, keeps them in a fair queue per model, gives them slots on
/// backends that serve their model and accounts every ending. One lock guards all state; no awaits, user code or
/// timer disposals run inside it, and waiters are completed after it is released. The gateway reaches it through
/// <see cref="IRequestQueue"/> (<see cref="InProcessRequestQueue"/>); its own members are synchronous because
/// everything it does completes under that lock.
/// </summary>
/// <remarks>
/// <para>
/// Fair share is start-time fair queuing over virtual token counters: a ticket's start tag is its owner's counter
/// for the model (service received and queued, per unit of weight) and tickets run in tag order, so while nothing new arrives
/// the order is exactly that of the virtual token counter policy, and a ticket's position is its rank in an
/// order-statistic tree — O(log n). Within a user tags only grow, so each user's tickets run in arrival order.
/// </para>
/// <para>
/// A user who becomes active starts at the model's virtual time (no banking of idle credit) and carries at most
/// one request's worth of earlier debt. No arrival is ever tagged before a ticket that is its owner's only waiting
/// ticket for the model, so such a ticket's position never grows; only a ticket returning after a backend failure
/// goes ahead of it.
/// </para>
/// <para>
/// Wait estimates (<see cref="WaitEstimates"/>), counters (<see cref="QueueStatistics"/>) and time-outs
/// (<see cref="DeadlineQueue"/>) live in their own classes over the same lock.
/// </para>
/// </remarks>
internal sealed partial class Scheduler : IDisposable
{
    private readonly object _lock = new();
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly BackendState[] _backends;
    private readonly Dictionary<string, int> _backendByName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ModelQueue> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, UserAccount> _users = new(StringComparer.Ordinal);
    private readonly LiveTickets _live = new();
    private readonly DeadlineQueue _deadlines;
    private readonly ChangeFeed _changes;
    private readonly WaitEstimates _estimates;
    private readonly QueueStatistics _stats;
    private readonly DateTimeOffset _startedAt;

    private long _sequence;
    private bool _disposed;

    /// <summary>Creates a scheduler over the given backends.</summary>
    public Scheduler(SchedulerOptions options, IEnumerable<BackendDefinition> backends, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backends);
        options.Validate();
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _startedAt = _time.GetUtcNow();

        var definitions = backends.ToArray();
        _backends = new BackendState[definitions.Length];
        for (int i = 0; i < definitions.Length; i++)
        {
            var definition = definitions[i];
            if (string.IsNullOrWhiteSpace(definition.Name) || definition.Slots < 1 || definition.Models.Count == 0)
            {
                throw new ArgumentException($"Backend '{definition.Name}' needs a name, at least one slot and at least one model.", nameof(backends));
            }

            if (!_backendByName.TryAdd(definition.Name, i))
            {
                throw new ArgumentException($"Backend name '{definition.Name}' is used twice.", nameof(backends));
            }

            _backends[i] = new BackendState(i, definition, _startedAt);
        }

        foreach (var model in _backends.SelectMany(b => b.Models).Distinct(StringComparer.Ordinal))
        {
            var serving = _backends.Where(b => b.Models.Contains(model, StringComparer.Ordinal)).Select(b => b.Index).ToArray();
            _queues[model] = new ModelQueue(model, serving);
        }

        _estimates = new WaitEstimates(_backends, options);
        _stats = new QueueStatistics(options.WaitSampleWindow);
        _changes = new ChangeFeed(_time, options.ChangeCoalescing);
        _deadlines = new DeadlineQueue(_time, OnDeadline);
    }

    public SchedulingPolicy Policy => _options.Policy;

    public IReadOnlyCollection<string> Models => _queues.Keys;

    public long ChangeVersion => _changes.Version;

    internal DateTimeOffset Now => _time.GetUtcNow();

    public Task WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default) =>
        _changes.WaitAsync(seenVersion, cancellationToken);

    /// <inheritdoc cref="IRequestQueue.ForgetIdleUsersAsync"/>
    public int ForgetIdleUsers()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int before = _users.Count;
            foreach (var (owner, account) in _users)
            {
                if (account.IsForgettable)
                {
                    _users.Remove(owner);
                }
            }

            return before - _users.Count;
        }
    }

    /// <inheritdoc cref="IRequestQueue.WaitForSlotAsync"/>
    public Task<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default)
    {
        var own = Own(ticket);
        var dispatched = own.Dispatched;
        return dispatched.IsCompleted || !cancellationToken.CanBeCanceled
            ? dispatched
            : WaitCancellablyAsync(own, cancellationToken);
    }

    /// <summary>Cancels a ticket by id. Returns false when no such ticket is live.</summary>
    public bool Cancel(string id)
    {
        SchedulerTicket? ticket;
        lock (_lock)
        {
            ticket = _live.Find(id);
        }

        return ticket is not null && Cancel(ticket);
    }

    /// <summary>
    /// Cancels a ticket: a waiting one ends now; a running one is signalled through <see cref="Ticket.Aborted"/>
    /// and ends when its holder ends the lease. Returns false when the ticket had already ended.
    /// </summary>
    public bool Cancel(Ticket ticket)
    {
        var own = Own(ticket);
        var after = new AfterLock();
        bool live;
        lock (_lock)
        {
            switch (own.State)
            {
                case TicketState.Waiting:
                    EndWaitingLocked(own, TicketOutcome.Cancelled, ref after);
                    live = true;
                    break;
                case TicketState.Running:
                    after.Abort(own.AbortSource);
                    live = true;
                    break;
                default:
                    live = false;
                    break;
            }
        }

        after.Run(_changes);
        return live;
    }

    /// <inheritdoc cref="IRequestQueue.SetBackendHealthAsync"/>
    public void SetBackendHealth(string backend, bool healthy) => ChangeBackend(backend, state =>
    {
        if (state.Healthy == healthy && !state.Trial)
        {
            return false;
        }

        state.Account(Now);
        state.Healthy = healthy;
        state.Trial = false;
        return true;
    });

    /// <inheritdoc cref="IRequestQueue.AllowBackendTrialAsync"/>
    public void AllowBackendTrial(string backend) => ChangeBackend(backend, state =>
    {
        if (state.Healthy || state.Trial)
        {
            return false;
        }

        state.Trial = true;
        return true;
    });

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        _deadlines.Dispose();
        _changes.Dispose();
    }

    internal void EndRunning(SchedulerLease lease, TicketOutcome outcome, ServiceSample? sample)
    {
        var after = new AfterLock();
        lock (_lock)
        {
            var ticket = lease.Holder;
            var now = Now;
            ReleaseSlotLocked(lease, now);
            if (outcome == TicketOutcome.Completed && sample is { } measured)
            {
                RecordServiceLocked(lease, measured, now);
            }

            EndLocked(ticket, outcome, now);
            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
    }

    internal bool Requeue(SchedulerLease lease)
    {
        var after = new AfterLock();
        bool requeued;
        lock (_lock)
        {
            var ticket = lease.Holder;
            var now = Now;
            ReleaseSlotLocked(lease, now);
            if (ticket.AbortRequested)
            {
                EndLocked(ticket, TicketOutcome.Cancelled, now);
                requeued = false;
            }
            else if (ticket.Attempts >= _options.MaxDispatchAttempts)
            {
                EndLocked(ticket, TicketOutcome.Failed, now);
                requeued = false;
            }
            else
            {
                // Back where it was: its old key sorts before everything that arrived after it.
                var lane = ticket.Lane!;
                ticket.State = TicketState.Waiting;
                ticket.ExcludedBackend = lease.BackendIndex;
                ticket.DispatchSource = SchedulerTicket.NewDispatchSource();
                ticket.Deadline = now + MaxWaitFor(ticket.RequestedMaxWait);
                lane.Queue.Waiting.Add(ticket);
                lane.Add(ticket, atFront: true);
                _stats.Waiting++;
                _stats.Requeued++;
                _deadlines.Add(ticket.Id, ticket.DeadlineTicks);
                requeued = true;
            }

            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
        return requeued;
    }

    /// <summary>Gives free slots to waiting tickets until no free slot has an eligible ticket: work-conserving.</summary>
    private void DispatchLocked(ref AfterLock after)
    {
        if (_stats.Waiting == 0)
        {
            return;
        }

        while (true)
        {
            SchedulerTicket? best = null;
            BackendState? bestBackend = null;
            foreach (var backend in _backends)
            {
                if (backend.Free <= 0)
                {
                    continue;
                }

                foreach (var model in backend.Models)
                {
                    var head = _queues[model].Waiting.Min;
                    if (head is null || (head.ExcludedBackend == backend.Index && OtherFreeBackend(head, backend.Index)))
                    {
                        continue;
                    }

                    int order = best is null ? -1 : head.CompareKey(best);
                    if (order < 0 || (order == 0 && LessLoaded(backend, bestBackend!)))
                    {
                        best = head;
                        bestBackend = backend;
                    }
                }
            }

            if (best is null)
            {
                return;
            }

            StartLocked(best, bestBackend!, ref after);
        }
    }

    private static bool LessLoaded(BackendState a, BackendState b) =>
        (double)a.Running.Count / a.Slots < (double)b.Running.Count / b.Slots;

    private bool OtherFreeBackend(SchedulerTicket ticket, int excluded)
    {
        foreach (int index in _queues[ticket.Model].Backends)
        {
            if (index != excluded && _backends[index].Free > 0)
            {
                return true;
            }
        }

        return false;
    }

    private void StartLocked(SchedulerTicket ticket, BackendState backend, ref AfterLock after)
    {
        var now = Now;
        var lane = ticket.Lane!;
        var queue = lane.Queue;
        queue.Waiting.Remove(ticket);
        lane.Remove(ticket);
        _stats.Waiting--;
        queue.VirtualTime = Math.Max(queue.VirtualTime, ticket.Tag);

        if (ticket.FirstDispatchedAt is null)
        {
            ticket.FirstDispatchedAt = now;
            _stats.RecordWait(now - ticket.ArrivedAt);
        }

        backend.Account(now);
        // A trial lets one ticket through, not a burst: this one uses it up, and its lease says so, for whoever
        // judges the backend by its outcome.
        var lease = new SchedulerLease(this, ticket, backend.Index, backend.Name, now, backend.Trial);
        backend.Trial = false;
        backend.Running.Add(lease);
        lane.Account.Running.Add(lease);
        _stats.Started();
        ticket.State = TicketState.Running;
        ticket.Backend = backend.Name;
        ticket.Attempts++;
        ticket.Lease = lease;
        after.Complete(ticket.DispatchSource, Dispatch.Started(lease));
    }

    private void ReleaseSlotLocked(SchedulerLease lease, DateTimeOffset now)
    {
        var backend = _backends[lease.BackendIndex];
        backend.Account(now);
        backend.Running.Remove(lease);
        lease.Holder.Lane!.Account.Running.Remove(lease);
        _stats.Running--;
        lease.Holder.Lease = null;
    }

    private void EndWaitingLocked(SchedulerTicket ticket, TicketOutcome outcome, ref AfterLock after)
    {
        var lane = ticket.Lane!;
        lane.Queue.Waiting.Remove(ticket);
        lane.Remove(ticket);
        _stats.Waiting--;
        if (_options.Policy == SchedulingPolicy.Fair && lane.FinishTag == ticket.FinishTag)
        {
            // It was the owner's latest ticket and never ran: take back what it had booked.
            lane.FinishTag = ticket.Tag;
        }

        EndLocked(ticket, outcome, Now);
        after.Complete(ticket.DispatchSource, Dispatch.Ended(outcome));
        after.Changed();
    }

    private void EndLocked(SchedulerTicket ticket, TicketOutcome outcome, DateTimeOffset now)
    {
        ticket.State = TicketState.Ended;
        ticket.Outcome = outcome;
        ticket.EndedAt = now;
        _live.Remove(ticket);
        _stats.Ended(outcome);

        if (ticket.Lane!.Account.IsIdle && _options.Policy == SchedulingPolicy.Fifo)
        {
            // Under FIFO an idle user has no state worth keeping.
            _users.Remove(ticket.Owner);
        }
    }

    private void RecordServiceLocked(SchedulerLease lease, ServiceSample sample, DateTimeOffset now)
    {
        var ticket = lease.Holder;
        _backends[lease.BackendIndex].Completed++;
        _estimates.Record(lease, sample.OutputTokens, now);

        if (_options.Policy == SchedulingPolicy.Fair)
        {
            // Charge what was really served: the counter moves by the difference from the estimate, but never
            // below the owner's waiting tickets, so the owner's order stays FIFO.
            var lane = ticket.Lane!;
            double actual = sample.PromptTokens + (_options.OutputTokenWeight * sample.OutputTokens);
            double corrected = lane.FinishTag + ((actual - ticket.Cost) / ticket.Weight);
            lane.FinishTag = Math.Max(corrected, lane.LastWaitingTag);
        }
    }

    private SchedulerTicket Own(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return ticket is SchedulerTicket { Lane: { } lane } own && _queues.TryGetValue(own.Model, out var mine) && ReferenceEquals(mine, lane.Queue)
            ? own
            : throw new ArgumentException($"Ticket '{ticket.Id}' was not admitted by this scheduler.", nameof(ticket));
    }

    private async Task<Dispatch> WaitCancellablyAsync(SchedulerTicket ticket, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static (state, _) =>
        {
            var (scheduler, t) = ((Scheduler, SchedulerTicket))state!;
            scheduler.Cancel(t);
        }, (this, ticket)))
        {
            return await ticket.Dispatched.ConfigureAwait(false);
        }
    }

    private void ChangeBackend(string backend, Func<BackendState, bool> change)
    {
        var after = new AfterLock();
        lock (_lock)
        {
            if (!_backendByName.TryGetValue(backend, out int index))
            {
                throw new ArgumentException($"No backend is named '{backend}'.", nameof(backend));
            }

            if (!change(_backends[index]))
            {
                return;
            }

            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
    }

    private void OnDeadline()
    {
        var after = new AfterLock();
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            // Entries of tickets that ran, ended or were requeued with a new deadline are stale.
            _deadlines.Expire(
                this,
                static (self, id, due) => self._live.Find(id) is { State: TicketState.Waiting } ticket && ticket.DeadlineTicks == due,
                (self, id) => self.EndWaitingLocked(self._live.Find(id)!, TicketOutcome.TimedOut, ref after));
        }

        after.Run(_changes);
    }
}
