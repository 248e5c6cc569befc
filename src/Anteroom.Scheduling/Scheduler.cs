namespace Anteroom.Scheduling;

/// <summary>
/// Admits tickets, keeps them in a fair queue per model, gives them slots on backends that serve their model and
/// accounts every ending. One lock guards all state; no awaits, user code or timer disposals run inside it, and
/// waiters are completed after it is released.
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
/// </remarks>
public sealed class Scheduler : IDisposable
{
    private readonly object _lock = new();
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly BackendState[] _backends;
    private readonly Dictionary<string, int> _backendByName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ModelQueue> _queues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, UserAccount> _users = new(StringComparer.Ordinal);
    private readonly LiveTickets _live = new();
    // Ids, not tickets: an entry stays until it reaches the top, long after its ticket ran or was cancelled, and must
    // not keep the ended ticket (and all it references) reachable until then.
    private readonly PriorityQueue<string, long> _deadlines = new();
    private readonly ITimer _deadlineTimer;
    private readonly ChangeFeed _changes;
    private readonly ServiceEstimator _estimator;
    private readonly double[] _waitSamplesMs;
    private readonly long[] _refusedByReason = new long[Enum.GetValues<RefusalReason>().Length];
    private readonly DateTimeOffset _startedAt;

    private long _sequence;
    private int _waiting;
    private int _running;
    private int _peakRunning;
    private long _admitted, _completed, _failed, _cancelled, _timedOut, _requeued;
    private int _waitSampleCount;
    private long _armedDeadline = long.MaxValue;
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

        _estimator = new ServiceEstimator(options.Prior, options.EstimateSmoothing);
        _waitSamplesMs = new double[options.WaitSampleWindow];
        _changes = new ChangeFeed(_time, options.ChangeCoalescing);
        _deadlineTimer = _time.CreateTimer(static state => ((Scheduler)state!).OnDeadline(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The scheduling policy in force.</summary>
    public SchedulingPolicy Policy => _options.Policy;

    /// <summary>The models some backend serves.</summary>
    public IReadOnlyCollection<string> Models => _queues.Keys;

    /// <summary>The number of queue-change announcements so far; pass it to <see cref="WaitForChangeAsync"/>.</summary>
    public long ChangeVersion => _changes.Version;

    internal DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>Completes at the first queue-change announcement after <paramref name="seenVersion"/> (announcements are coalesced).</summary>
    public Task WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default) =>
        _changes.WaitAsync(seenVersion, cancellationToken);

    /// <summary>How many users the scheduler keeps an account for.</summary>
    internal int TrackedUsers
    {
        get
        {
            lock (_lock)
            {
                return _users.Count;
            }
        }
    }

    /// <summary>
    /// Drops the accounts of users who hold no ticket and owe no service, so memory follows the users who are
    /// active or in debt, not every identity ever seen. Returns how many were dropped. Call it now and then.
    /// </summary>
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

    /// <summary>Admits a ticket or refuses it at once with a reason and an estimate of when to retry.</summary>
    public Admission Admit(TicketRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrEmpty(request.Id);
        ArgumentException.ThrowIfNullOrEmpty(request.Owner);
        ArgumentException.ThrowIfNullOrEmpty(request.Model);
        if (!(request.Weight > 0) || double.IsInfinity(request.Weight))
        {
            throw new ArgumentOutOfRangeException(nameof(request), "Weight must be a positive number.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(request.PromptTokens);
        if (request.MaxOutputTokens is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "MaxOutputTokens must be at least 1.");
        }

        if (request.MaxInFlight is < 1 || request.MaxWaiting is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "MaxInFlight and MaxWaiting must be at least 1.");
        }

        var after = new AfterLock();
        Admission admission;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            admission = AdmitLocked(request, ref after);
        }

        after.Run(_changes);
        return admission;
    }

    /// <summary>
    /// Waits for the ticket's slot. Cancelling <paramref name="cancellationToken"/> cancels the ticket (its holder
    /// left): a waiting ticket leaves the queue at once, a running one is aborted through <see cref="Ticket.Aborted"/>.
    /// </summary>
    public async Task<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        var dispatched = ticket.Dispatched;
        if (dispatched.IsCompleted || !cancellationToken.CanBeCanceled)
        {
            return await dispatched.ConfigureAwait(false);
        }

        using (cancellationToken.UnsafeRegister(static (state, _) =>
        {
            var (scheduler, t) = ((Scheduler, Ticket))state!;
            scheduler.Cancel(t);
        }, (this, ticket)))
        {
            return await dispatched.ConfigureAwait(false);
        }
    }

    /// <summary>Cancels a ticket by id. Returns false when no such ticket is live.</summary>
    public bool Cancel(string id)
    {
        Ticket? ticket;
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
        ArgumentNullException.ThrowIfNull(ticket);
        var after = new AfterLock();
        bool live;
        lock (_lock)
        {
            switch (ticket.State)
            {
                case TicketState.Waiting:
                    EndWaitingLocked(ticket, TicketOutcome.Cancelled, ref after);
                    live = true;
                    break;
                case TicketState.Running:
                    after.Abort(ticket.AbortSource);
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

    /// <summary>A live (waiting or running) ticket by id.</summary>
    public Ticket? Find(string id)
    {
        lock (_lock)
        {
            return _live.Find(id);
        }
    }

    /// <summary>The ticket's place in its queue, or null when it is not waiting.</summary>
    public WaitingPlace? GetPlace(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        lock (_lock)
        {
            if (ticket.State != TicketState.Waiting)
            {
                return null;
            }

            var queue = ticket.Lane!.Queue;
            int position = queue.Waiting.Rank(ticket) + 1;
            return new WaitingPlace(position, queue.Waiting.Count, EstimateWaitLocked(queue, position));
        }
    }

    /// <summary>The waiting tickets in dispatch order per model, at most <paramref name="limitPerModel"/> of each.</summary>
    public IReadOnlyList<WaitingTicket> GetWaiting(int limitPerModel = int.MaxValue)
    {
        lock (_lock)
        {
            var result = new List<WaitingTicket>();
            foreach (var queue in _queues.Values)
            {
                int position = 0;
                foreach (var ticket in queue.Waiting.InOrder(limitPerModel))
                {
                    result.Add(new WaitingTicket(ticket, ++position));
                }
            }

            return result;
        }
    }

    /// <summary>The slots held now.</summary>
    public IReadOnlyList<SlotLease> GetRunning()
    {
        lock (_lock)
        {
            return [.. _backends.SelectMany(b => b.Running)];
        }
    }

    /// <summary>Marks a backend healthy or not; an unhealthy backend gets no new tickets.</summary>
    public void SetBackendHealth(string backend, bool healthy)
    {
        var after = new AfterLock();
        lock (_lock)
        {
            if (!_backendByName.TryGetValue(backend, out int index))
            {
                throw new ArgumentException($"No backend is named '{backend}'.", nameof(backend));
            }

            var state = _backends[index];
            if (state.Healthy == healthy && !state.Trial)
            {
                return;
            }

            state.Account(Now);
            state.Healthy = healthy;
            state.Trial = false;
            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
    }

    /// <summary>
    /// Lets one ticket through to an unhealthy backend, to try whether it works again: the next ticket its models'
    /// queues hold, or the next arrival for them, which is admitted as if the backend had one slot. Whatever comes
    /// of it is told with <see cref="SetBackendHealth"/>. No effect on a healthy backend.
    /// </summary>
    public void AllowBackendTrial(string backend)
    {
        var after = new AfterLock();
        lock (_lock)
        {
            if (!_backendByName.TryGetValue(backend, out int index))
            {
                throw new ArgumentException($"No backend is named '{backend}'.", nameof(backend));
            }

            var state = _backends[index];
            if (state.Healthy || state.Trial)
            {
                return;
            }

            state.Trial = true;
            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
    }

    /// <summary>
    /// How long a request for <paramref name="model"/> arriving now would wait, or null when no healthy backend
    /// serves it: what a refusal or a timeout tells its caller to wait before trying again.
    /// </summary>
    public TimeSpan? EstimateWait(string model)
    {
        lock (_lock)
        {
            if (!_queues.TryGetValue(model, out var queue) || HealthySlotsLocked(queue) == 0)
            {
                return null;
            }

            return EstimateWaitLocked(queue, queue.Waiting.Count + 1);
        }
    }

    /// <summary>Whether the backend is currently taking tickets.</summary>
    public bool IsBackendHealthy(string backend)
    {
        lock (_lock)
        {
            return _backendByName.TryGetValue(backend, out int index) && _backends[index].Healthy;
        }
    }

    /// <summary>Statistics at this instant.</summary>
    public SchedulerSnapshot Snapshot()
    {
        lock (_lock)
        {
            var now = Now;
            double uptime = Math.Max((now - _startedAt).TotalSeconds, 1e-9);
            var models = _queues.Values.Select(q => new ModelQueueSnapshot(
                q.Model,
                q.Waiting.Count,
                q.Backends.Sum(b => _backends[b].Running.Count(l => l.Ticket.Model == q.Model)),
                q.Backends.Where(b => _backends[b].Healthy).Sum(b => _backends[b].Slots),
                TimeSpan.FromMilliseconds(ModelServiceMsLocked(q)))).ToList();
            var backends = _backends.Select(b => new BackendSnapshot(
                b.Name, b.Slots, b.Running.Count, b.Healthy, b.Models, b.Completed,
                b.BusySlotSeconds(now) / (b.Slots * uptime))).ToList();
            var refused = new Dictionary<RefusalReason, long>();
            foreach (var reason in Enum.GetValues<RefusalReason>())
            {
                if (_refusedByReason[(int)reason] > 0)
                {
                    refused[reason] = _refusedByReason[(int)reason];
                }
            }

            return new SchedulerSnapshot
            {
                TakenAt = now,
                Admitted = _admitted,
                Completed = _completed,
                Failed = _failed,
                Cancelled = _cancelled,
                TimedOut = _timedOut,
                Refused = _refusedByReason.Sum(),
                RefusedByReason = refused,
                Requeued = _requeued,
                Waiting = _waiting,
                Running = _running,
                PeakRunning = _peakRunning,
                Models = models,
                Backends = backends,
                Wait = WaitPercentilesLocked(),
            };
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        _deadlineTimer.Dispose();
        _changes.Dispose();
    }

    internal void EndRunning(SlotLease lease, TicketOutcome outcome, ServiceSample? sample)
    {
        var after = new AfterLock();
        lock (_lock)
        {
            var ticket = lease.Ticket;
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

    internal bool Requeue(SlotLease lease)
    {
        var after = new AfterLock();
        bool requeued;
        lock (_lock)
        {
            var ticket = lease.Ticket;
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
                ticket.DispatchSource = Ticket.NewDispatchSource();
                ticket.Deadline = now + MaxWaitFor(ticket.RequestedMaxWait);
                lane.Queue.Waiting.Add(ticket);
                lane.Add(ticket, atFront: true);
                _waiting++;
                _requeued++;
                ScheduleDeadlineLocked(ticket);
                requeued = true;
            }

            DispatchLocked(ref after);
            after.Changed();
        }

        after.Run(_changes);
        return requeued;
    }

    private Admission AdmitLocked(TicketRequest request, ref AfterLock after)
    {
        if (_live.Find(request.Id) is not null)
        {
            return Refuse(RefusalReason.DuplicateId, $"A request with id '{request.Id}' is already admitted.", null);
        }

        if (!_queues.TryGetValue(request.Model, out var queue))
        {
            return Refuse(RefusalReason.UnknownModel, $"No backend serves model '{request.Model}'.", null);
        }

        int slots = HealthySlotsLocked(queue);
        if (slots == 0)
        {
            return Refuse(RefusalReason.NoHealthyBackend, $"No healthy backend serves model '{request.Model}' right now.", _options.NoBackendRetryAfter);
        }

        if (!_users.TryGetValue(request.Owner, out var user))
        {
            user = new UserAccount(request.Owner);
            _users[request.Owner] = user;
        }

        int maxInFlight = Math.Min(_options.MaxInFlightPerUser, request.MaxInFlight ?? int.MaxValue);
        if (user.InFlight >= maxInFlight)
        {
            return Refuse(RefusalReason.UserInFlightLimit,
                $"You already have {user.InFlight} requests in flight; the limit is {maxInFlight}.",
                EarliestEndLocked(user));
        }

        int maxWaiting = Math.Min(_options.MaxWaitingPerUser, request.MaxWaiting ?? int.MaxValue);
        if (user.Waiting >= maxWaiting)
        {
            return Refuse(RefusalReason.UserQueueFull,
                $"You already have {user.Waiting} requests waiting; the limit is {maxWaiting}.",
                EarliestDispatchLocked(user));
        }

        if (_waiting >= _options.MaxQueueLength)
        {
            return Refuse(RefusalReason.QueueFull,
                $"The queue is full ({_waiting} waiting).",
                NextSlotFreeLocked(queue));
        }

        var figures = ModelFiguresLocked(queue);
        double expectedOutput = Math.Min(request.MaxOutputTokens ?? double.MaxValue, figures.OutputTokens);
        double cost = request.PromptTokens + (_options.OutputTokenWeight * expectedOutput);
        var lane = user.Lane(queue);
        double tag = StartTagLocked(lane, cost / request.Weight);
        long sequence = ++_sequence;
        int position = queue.Waiting.CountBefore(tag, sequence) + 1;
        var estimate = EstimateWaitLocked(queue, position);
        var maxWait = MaxWaitFor(request.MaxWait);
        if (estimate > maxWait)
        {
            var retry = estimate - maxWait;
            return Refuse(RefusalReason.WaitTooLong,
                $"The estimated wait ({estimate.TotalSeconds:0} s) is longer than this request may wait ({maxWait.TotalSeconds:0} s).",
                retry < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retry);
        }

        var now = Now;
        var ticket = new Ticket(request, sequence, cost, expectedOutput, now, now + maxWait)
        {
            Tag = tag,
            RequestedMaxWait = request.MaxWait ?? TimeSpan.Zero,
            Lane = lane,
        };
        if (_options.Policy == SchedulingPolicy.Fair)
        {
            lane.FinishTag = ticket.FinishTag;
        }

        queue.Waiting.Add(ticket);
        lane.Add(ticket, atFront: false);
        _live.Add(ticket);
        _waiting++;
        _admitted++;
        ScheduleDeadlineLocked(ticket);
        DispatchLocked(ref after);
        after.Changed();
        return Admission.Admitted(ticket);
    }

    private double StartTagLocked(UserLane lane, double normalisedCost)
    {
        if (_options.Policy == SchedulingPolicy.Fifo)
        {
            return 0;
        }

        var queue = lane.Queue;
        double start = lane.FinishTag;
        if (lane.Count == 0)
        {
            // Returning to this model: no credit saved while idle, and at most one request's worth of old debt.
            start = Math.Clamp(start, queue.VirtualTime, queue.VirtualTime + normalisedCost);
        }

        // Never ahead of a ticket that waits alone for its owner: its position must not grow.
        if (queue.Singles.Max is { } lastSingle)
        {
            start = Math.Max(start, lastSingle.Tag);
        }

        return Math.Max(start, queue.VirtualTime);
    }

    private Admission Refuse(RefusalReason reason, string message, TimeSpan? retryAfter)
    {
        _refusedByReason[(int)reason]++;
        return Admission.Refused(new Refusal(reason, message, retryAfter));
    }

    private TimeSpan MaxWaitFor(TimeSpan? requested) =>
        requested is { } wait && wait > TimeSpan.Zero && wait < _options.MaxWait ? wait : _options.MaxWait;

    /// <summary>Gives free slots to waiting tickets until no free slot has an eligible ticket: work-conserving.</summary>
    private void DispatchLocked(ref AfterLock after)
    {
        if (_waiting == 0)
        {
            return;
        }

        while (true)
        {
            Ticket? best = null;
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

    private bool OtherFreeBackend(Ticket ticket, int excluded)
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

    private void StartLocked(Ticket ticket, BackendState backend, ref AfterLock after)
    {
        var now = Now;
        var lane = ticket.Lane!;
        var queue = lane.Queue;
        queue.Waiting.Remove(ticket);
        lane.Remove(ticket);
        _waiting--;
        queue.VirtualTime = Math.Max(queue.VirtualTime, ticket.Tag);

        if (ticket.FirstDispatchedAt is null)
        {
            ticket.FirstDispatchedAt = now;
            _waitSamplesMs[_waitSampleCount++ % _waitSamplesMs.Length] = (now - ticket.ArrivedAt).TotalMilliseconds;
        }

        backend.Account(now);
        // A trial lets one ticket through, not a burst: this one uses it up, and its lease says so, for whoever
        // judges the backend by its outcome.
        var lease = new SlotLease(this, ticket, backend.Index, backend.Name, now) { IsTrial = backend.Trial };
        backend.Trial = false;
        backend.Running.Add(lease);
        lane.Account.Running.Add(lease);
        _running++;
        _peakRunning = Math.Max(_peakRunning, _running);
        ticket.State = TicketState.Running;
        ticket.Backend = backend.Name;
        ticket.Attempts++;
        ticket.Lease = lease;
        after.Complete(ticket.DispatchSource, new Dispatch(lease, default));
    }

    private void ReleaseSlotLocked(SlotLease lease, DateTimeOffset now)
    {
        var backend = _backends[lease.BackendIndex];
        backend.Account(now);
        backend.Running.Remove(lease);
        lease.Ticket.Lane!.Account.Running.Remove(lease);
        _running--;
        lease.Ticket.Lease = null;
    }

    private void EndWaitingLocked(Ticket ticket, TicketOutcome outcome, ref AfterLock after)
    {
        var lane = ticket.Lane!;
        lane.Queue.Waiting.Remove(ticket);
        lane.Remove(ticket);
        _waiting--;
        if (_options.Policy == SchedulingPolicy.Fair && lane.FinishTag == ticket.FinishTag)
        {
            // It was the owner's latest ticket and never ran: take back what it had booked.
            lane.FinishTag = ticket.Tag;
        }

        EndLocked(ticket, outcome, Now);
        after.Complete(ticket.DispatchSource, new Dispatch(null, outcome));
        after.Changed();
    }

    private void EndLocked(Ticket ticket, TicketOutcome outcome, DateTimeOffset now)
    {
        ticket.State = TicketState.Ended;
        ticket.Outcome = outcome;
        ticket.EndedAt = now;
        _live.Remove(ticket);
        switch (outcome)
        {
            case TicketOutcome.Completed: _completed++; break;
            case TicketOutcome.Failed: _failed++; break;
            case TicketOutcome.Cancelled: _cancelled++; break;
            case TicketOutcome.TimedOut: _timedOut++; break;
        }

        if (ticket.Lane!.Account.IsIdle && _options.Policy == SchedulingPolicy.Fifo)
        {
            // Under FIFO an idle user has no state worth keeping.
            _users.Remove(ticket.Owner);
        }
    }

    private void RecordServiceLocked(SlotLease lease, ServiceSample sample, DateTimeOffset now)
    {
        var ticket = lease.Ticket;
        _backends[lease.BackendIndex].Completed++;
        var firstToken = lease.FirstTokenAt ?? now;
        _estimator.Record(lease.BackendIndex, ticket.Model, firstToken - lease.StartedAt, now - firstToken, sample.OutputTokens);

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

    private int HealthySlotsLocked(ModelQueue queue)
    {
        int slots = 0;
        foreach (int index in queue.Backends)
        {
            slots += _backends[index].ServingSlots;
        }

        return slots;
    }

    private ServiceEstimator.Figures ModelFiguresLocked(ModelQueue queue)
    {
        // Slot-weighted mean over the healthy backends serving the model.
        double weight = 0, ttft = 0, tps = 0, output = 0;
        foreach (int index in queue.Backends)
        {
            var backend = _backends[index];
            if (backend.ServingSlots == 0 && HealthySlotsLocked(queue) > 0)
            {
                continue;
            }

            var figures = _estimator.Get(index, queue.Model);
            ttft += figures.TimeToFirstTokenMs * backend.Slots;
            tps += figures.TokensPerSecond * backend.Slots;
            output += figures.OutputTokens * backend.Slots;
            weight += backend.Slots;
        }

        return new ServiceEstimator.Figures(ttft / weight, tps / weight, output / weight);
    }

    private double ModelServiceMsLocked(ModelQueue queue)
    {
        var figures = ModelFiguresLocked(queue);
        return figures.ServiceMs(figures.OutputTokens);
    }

    /// <summary>
    /// How much longer a running ticket should hold its slot, by what is measured now rather than what was assumed
    /// when it was admitted: estimates made before the first measurement would otherwise stay wrong for its whole run.
    /// </summary>
    private static double RemainingMs(SlotLease lease, ServiceEstimator.Figures figures, DateTimeOffset now)
    {
        var ticket = lease.Ticket;
        double expectedOutput = Math.Min(ticket.MaxOutputTokens ?? double.MaxValue, figures.OutputTokens);
        return Math.Max(figures.ServiceMs(expectedOutput) - (now - lease.StartedAt).TotalMilliseconds, 0);
    }

    /// <summary>
    /// When the ticket at <paramref name="position"/> should start: the slots serving the model free up at their
    /// running tickets' expected ends, and every later round of dispatches takes one mean service time.
    /// </summary>
    private TimeSpan EstimateWaitLocked(ModelQueue queue, int position)
    {
        int slots = HealthySlotsLocked(queue);
        if (slots == 0)
        {
            return TimeSpan.MaxValue;
        }

        var now = Now;
        Span<double> freeAt = slots <= 256 ? stackalloc double[slots] : new double[slots];
        int filled = 0;
        foreach (int index in queue.Backends)
        {
            var backend = _backends[index];
            if (backend.ServingSlots == 0)
            {
                continue;
            }

            foreach (var lease in backend.Running)
            {
                if (filled == slots)
                {
                    break;
                }

                var figures = _estimator.Get(index, lease.Ticket.Model);
                freeAt[filled++] = RemainingMs(lease, figures, now);
            }
        }

        // The rest of the slots are free now.
        freeAt[filled..].Clear();
        freeAt.Sort();
        int ahead = position - 1;
        double serviceMs = ModelServiceMsLocked(queue);
        double waitMs = freeAt[ahead % slots] + ((ahead / slots) * serviceMs);
        return TimeSpan.FromMilliseconds(waitMs);
    }

    private TimeSpan NextSlotFreeLocked(ModelQueue queue)
    {
        var next = EstimateWaitLocked(queue, 1);
        return next > TimeSpan.Zero ? next : TimeSpan.FromMilliseconds(ModelServiceMsLocked(queue) / Math.Max(1, HealthySlotsLocked(queue)));
    }

    private TimeSpan EarliestDispatchLocked(UserAccount user)
    {
        var earliest = TimeSpan.MaxValue;
        foreach (var ticket in user.FirstWaitingPerModel())
        {
            var queue = ticket.Lane!.Queue;
            var wait = EstimateWaitLocked(queue, queue.Waiting.Rank(ticket) + 1);
            earliest = wait < earliest ? wait : earliest;
        }

        return earliest == TimeSpan.MaxValue ? _options.NoBackendRetryAfter : earliest;
    }

    private TimeSpan EarliestEndLocked(UserAccount user)
    {
        var now = Now;
        double earliestMs = double.MaxValue;
        foreach (var lease in user.Running)
        {
            var figures = _estimator.Get(lease.BackendIndex, lease.Ticket.Model);
            earliestMs = Math.Min(earliestMs, RemainingMs(lease, figures, now));
        }

        if (earliestMs != double.MaxValue)
        {
            return TimeSpan.FromMilliseconds(earliestMs);
        }

        // Everything the user has is waiting: the first of it must start and finish.
        var firstStart = EarliestDispatchLocked(user);
        var anyQueue = user.FirstWaitingPerModel().First().Lane!.Queue;
        return firstStart + TimeSpan.FromMilliseconds(ModelServiceMsLocked(anyQueue));
    }

    private WaitPercentiles WaitPercentilesLocked()
    {
        int count = Math.Min(_waitSampleCount, _waitSamplesMs.Length);
        if (count == 0)
        {
            return new WaitPercentiles(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0);
        }

        var sorted = _waitSamplesMs.AsSpan(0, count).ToArray();
        Array.Sort(sorted);
        TimeSpan At(double quantile) => TimeSpan.FromMilliseconds(sorted[(int)Math.Ceiling(quantile * count) - 1]);
        return new WaitPercentiles(At(0.50), At(0.95), At(0.99), count);
    }

    private void ScheduleDeadlineLocked(Ticket ticket)
    {
        long due = ticket.DeadlineTicks;
        _deadlines.Enqueue(ticket.Id, due);
        if (due < _armedDeadline)
        {
            ArmDeadlineTimerLocked(due);
        }
    }

    private void ArmDeadlineTimerLocked(long due)
    {
        _armedDeadline = due;
        // At least one tick ahead: a timer due now could fire on this thread while the lock is held.
        var delay = TimeSpan.FromTicks(Math.Max(due - Now.UtcTicks, 1));
        _deadlineTimer.Change(delay, Timeout.InfiniteTimeSpan);
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

            long now = Now.UtcTicks;
            _armedDeadline = long.MaxValue;
            while (_deadlines.TryPeek(out string? id, out long due))
            {
                // Entries of tickets that ran, ended or were requeued with a new deadline are stale: drop them.
                var ticket = _live.Find(id);
                bool current = ticket is not null && ticket.State == TicketState.Waiting && ticket.DeadlineTicks == due;
                if (current && due > now)
                {
                    ArmDeadlineTimerLocked(due);
                    break;
                }

                _deadlines.Dequeue();
                if (current)
                {
                    EndWaitingLocked(ticket!, TicketOutcome.TimedOut, ref after);
                }
            }
        }

        after.Run(_changes);
    }

    /// <summary>Work that must wait until the lock is released: completing waiters, aborting runs, announcing.</summary>
    /// <remarks>Nearly every operation completes one waiter at most, so the first is held inline and lists are only made for more.</remarks>
    private struct AfterLock
    {
        private TaskCompletionSource<Dispatch>? _source;
        private Dispatch _result;
        private List<(TaskCompletionSource<Dispatch> Source, Dispatch Result)>? _moreResults;
        private CancellationTokenSource? _abort;
        private List<CancellationTokenSource>? _moreAborts;
        private bool _changed;

        public void Complete(TaskCompletionSource<Dispatch> source, Dispatch result)
        {
            if (_source is null)
            {
                _source = source;
                _result = result;
            }
            else
            {
                (_moreResults ??= []).Add((source, result));
            }
        }

        public void Abort(CancellationTokenSource source)
        {
            if (_abort is null)
            {
                _abort = source;
            }
            else
            {
                (_moreAborts ??= []).Add(source);
            }
        }

        public void Changed() => _changed = true;

        public readonly void Run(ChangeFeed changes)
        {
            _source?.TrySetResult(_result);
            if (_moreResults is not null)
            {
                foreach (var (source, result) in _moreResults)
                {
                    source.TrySetResult(result);
                }
            }

            _abort?.Cancel();
            if (_moreAborts is not null)
            {
                foreach (var source in _moreAborts)
                {
                    source.Cancel();
                }
            }

            if (_changed)
            {
                changes.Changed();
            }
        }
    }
}
