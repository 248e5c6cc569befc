using System.Buffers;

namespace Anteroom.Scheduling;

/// <summary>
/// How long tickets will wait and runs will last, from the measured service figures, the running tickets and the
/// healthy slots. Reads the <see cref="Scheduler"/>'s backends and queues: call it only under the scheduler's lock.
/// </summary>
internal sealed class WaitEstimates
{
    private readonly BackendState[] _backends;
    private readonly ServiceEstimator _estimator;
    private readonly TimeSpan _noBackendRetryAfter;

    public WaitEstimates(BackendState[] backends, SchedulerOptions options)
    {
        _backends = backends;
        _estimator = new ServiceEstimator(options.Prior, options.EstimateSmoothing);
        _noBackendRetryAfter = options.NoBackendRetryAfter;
    }

    /// <summary>Records what a completed run measured, for the backend and model it ran on.</summary>
    public void Record(SchedulerLease lease, int outputTokens, DateTimeOffset now)
    {
        var firstToken = lease.FirstTokenAt ?? now;
        _estimator.Record(lease.BackendIndex, lease.Holder.Model, firstToken - lease.StartedAt, now - firstToken, outputTokens);
    }

    public int HealthySlots(ModelQueue queue)
    {
        int slots = 0;
        foreach (int index in queue.Backends)
        {
            slots += _backends[index].ServingSlots;
        }

        return slots;
    }

    public ServiceEstimator.Figures ModelFigures(ModelQueue queue)
    {
        // Slot-weighted mean over the healthy backends serving the model.
        double weight = 0, ttft = 0, tps = 0, output = 0;
        foreach (int index in queue.Backends)
        {
            var backend = _backends[index];
            if (backend.ServingSlots == 0 && HealthySlots(queue) > 0)
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

    public double ModelServiceMs(ModelQueue queue)
    {
        var figures = ModelFigures(queue);
        return figures.ServiceMs(figures.OutputTokens);
    }

    /// <summary>
    /// When the ticket at <paramref name="position"/> should start: the slots serving the model free up at their
    /// running tickets' expected ends, and every later round of dispatches takes one mean service time.
    /// </summary>
    public TimeSpan Wait(ModelQueue queue, int position, DateTimeOffset now)
    {
        int slots = HealthySlots(queue);
        if (slots == 0)
        {
            return TimeSpan.MaxValue;
        }

        int running = 0;
        foreach (int index in queue.Backends)
        {
            var backend = _backends[index];
            running += backend.ServingSlots == 0 ? 0 : backend.Running.Count;
        }

        // The slots free now come first: a ticket that one of them awaits, the usual case when nothing queues,
        // needs no look at the running tickets.
        int busy = Math.Min(running, slots);
        int ahead = position - 1;
        int round = ahead / slots;
        int rank = (ahead % slots) - (slots - busy);
        double roundsMs = round == 0 ? 0 : round * ModelServiceMs(queue);
        if (rank < 0)
        {
            return TimeSpan.FromMilliseconds(roundsMs);
        }

        double[]? rented = busy <= 256 ? null : ArrayPool<double>.Shared.Rent(busy);
        Span<double> freeAt = rented is null ? stackalloc double[busy] : rented.AsSpan(0, busy);
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
                if (filled == busy)
                {
                    break;
                }

                freeAt[filled++] = RemainingMs(lease, now);
            }
        }

        freeAt.Sort();
        double waitMs = freeAt[rank] + roundsMs;
        if (rented is not null)
        {
            ArrayPool<double>.Shared.Return(rented);
        }

        return TimeSpan.FromMilliseconds(waitMs);
    }

    /// <summary>When a slot for the model frees up: what a full queue tells its callers to wait.</summary>
    public TimeSpan NextSlotFree(ModelQueue queue, DateTimeOffset now)
    {
        var next = Wait(queue, 1, now);
        return next > TimeSpan.Zero ? next : TimeSpan.FromMilliseconds(ModelServiceMs(queue) / Math.Max(1, HealthySlots(queue)));
    }

    /// <summary>When the first of the user's waiting tickets should start: what a full per-user queue tells it.</summary>
    public TimeSpan EarliestDispatch(UserAccount user, DateTimeOffset now)
    {
        var earliest = TimeSpan.MaxValue;
        foreach (var ticket in user.FirstWaitingPerModel())
        {
            var queue = ticket.Lane!.Queue;
            var wait = Wait(queue, queue.Waiting.Rank(ticket) + 1, now);
            earliest = wait < earliest ? wait : earliest;
        }

        return earliest == TimeSpan.MaxValue ? _noBackendRetryAfter : earliest;
    }

    /// <summary>When the first of the user's tickets should end: what the per-user in-flight limit tells it.</summary>
    public TimeSpan EarliestEnd(UserAccount user, DateTimeOffset now)
    {
        double earliestMs = double.MaxValue;
        foreach (var lease in user.Running)
        {
            earliestMs = Math.Min(earliestMs, RemainingMs(lease, now));
        }

        if (earliestMs != double.MaxValue)
        {
            return TimeSpan.FromMilliseconds(earliestMs);
        }

        // Everything the user has is waiting: the first of it must start and finish.
        var firstStart = EarliestDispatch(user, now);
        var anyQueue = user.FirstWaitingPerModel().First().Lane!.Queue;
        return firstStart + TimeSpan.FromMilliseconds(ModelServiceMs(anyQueue));
    }

    /// <summary>
    /// How much longer a running ticket should hold its slot, by what is measured now rather than what was assumed
    /// when it was admitted: estimates made before the first measurement would otherwise stay wrong for its whole run.
    /// </summary>
    private double RemainingMs(SchedulerLease lease, DateTimeOffset now)
    {
        var ticket = lease.Holder;
        var figures = _estimator.Get(lease.BackendIndex, ticket.Model);
        double expectedOutput = Math.Min(ticket.MaxOutputTokens ?? double.MaxValue, figures.OutputTokens);
        return Math.Max(figures.ServiceMs(expectedOutput) - (now - lease.StartedAt).TotalMilliseconds, 0);
    }
}
