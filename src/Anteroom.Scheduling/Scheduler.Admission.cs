namespace Anteroom.Scheduling;

// A part of the scheduler rather than a class of its own: admitting reads and changes the same users, queues and
// counters as dispatching and ending, in one step under the same lock, so that a decision and its effect cannot be
// separated by another thread.
internal sealed partial class Scheduler
{
    /// <inheritdoc cref="IRequestQueue.AdmitAsync"/>
    public Admission Admit(TicketRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();

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

        int slots = _estimates.HealthySlots(queue);
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
                _estimates.EarliestEnd(user, Now));
        }

        int maxWaiting = Math.Min(_options.MaxWaitingPerUser, request.MaxWaiting ?? int.MaxValue);
        if (user.Waiting >= maxWaiting)
        {
            return Refuse(RefusalReason.UserQueueFull,
                $"You already have {user.Waiting} requests waiting; the limit is {maxWaiting}.",
                _estimates.EarliestDispatch(user, Now));
        }

        if (_stats.Waiting >= _options.MaxQueueLength)
        {
            return Refuse(RefusalReason.QueueFull,
                $"The queue is full ({_stats.Waiting} waiting).",
                _estimates.NextSlotFree(queue, Now));
        }

        var figures = _estimates.ModelFigures(queue);
        double expectedOutput = Math.Min(request.MaxOutputTokens ?? double.MaxValue, figures.OutputTokens);
        double cost = request.PromptTokens + (_options.OutputTokenWeight * expectedOutput);
        var lane = user.Lane(queue);
        double tag = StartTagLocked(lane, cost / request.Weight);
        long sequence = ++_sequence;
        int position = queue.Waiting.CountBefore(tag, sequence) + 1;
        var estimate = _estimates.Wait(queue, position, Now);
        var maxWait = MaxWaitFor(request.MaxWait);
        if (estimate > maxWait)
        {
            var retry = estimate - maxWait;
            return Refuse(RefusalReason.WaitTooLong,
                $"The estimated wait ({estimate.TotalSeconds:0} s) is longer than this request may wait ({maxWait.TotalSeconds:0} s).",
                retry < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retry);
        }

        var now = Now;
        var ticket = new SchedulerTicket(request, sequence, cost, expectedOutput, now, now + maxWait)
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
        _stats.Waiting++;
        _stats.Admitted++;
        _deadlines.Add(ticket.Id, ticket.DeadlineTicks);
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
        _stats.Refused(reason);
        return Admission.Refused(new Refusal(reason, message, retryAfter));
    }

    private TimeSpan MaxWaitFor(TimeSpan? requested) =>
        requested is { } wait && wait > TimeSpan.Zero && wait < _options.MaxWait ? wait : _options.MaxWait;
}
