namespace Anteroom.Scheduling;

// A part of the scheduler rather than a class of its own: every view reads the queues, tickets and backends that
// the queue operations change, under the same lock, and a view taken outside it would be torn.
internal sealed partial class Scheduler
{
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
        var own = Own(ticket);
        lock (_lock)
        {
            return PlaceLocked(own);
        }
    }

    /// <summary>The place of the waiting ticket with that id, or null when none is waiting.</summary>
    public WaitingPlace? GetPlace(string id)
    {
        lock (_lock)
        {
            return _live.Find(id) is { } ticket ? PlaceLocked(ticket) : null;
        }
    }

    /// <summary>The waiting tickets in dispatch order per model, at most <paramref name="limitPerModel"/> of each.</summary>
    public IReadOnlyList<(Ticket Ticket, int Position)> GetWaiting(int limitPerModel = int.MaxValue)
    {
        lock (_lock)
        {
            var result = new List<(Ticket, int)>();
            foreach (var queue in _queues.Values)
            {
                int position = 0;
                foreach (var ticket in queue.Waiting.InOrder(limitPerModel))
                {
                    result.Add((ticket, ++position));
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

    /// <inheritdoc cref="IRequestQueue.EstimateWaitAsync"/>
    public TimeSpan? EstimateWait(string model)
    {
        lock (_lock)
        {
            if (!_queues.TryGetValue(model, out var queue) || _estimates.HealthySlots(queue) == 0)
            {
                return null;
            }

            return _estimates.Wait(queue, queue.Waiting.Count + 1, Now);
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

    /// <inheritdoc cref="IRequestQueue.GetCountsAsync"/>
    public QueueCounts Counts()
    {
        lock (_lock)
        {
            return _stats.Counts();
        }
    }

    /// <summary>Statistics at this instant.</summary>
    public SchedulerSnapshot Snapshot()
    {
        DateTimeOffset now;
        QueueCounts counts;
        int peakRunning;
        List<ModelQueueSnapshot> models;
        List<BackendSnapshot> backends;
        Dictionary<RefusalReason, long> refused;
        double[] waits;
        lock (_lock)
        {
            now = Now;
            double uptime = Math.Max((now - _startedAt).TotalSeconds, 1e-9);
            models = [.. _queues.Values.Select(q => new ModelQueueSnapshot(
                q.Model,
                q.Waiting.Count,
                q.Backends.Sum(b => _backends[b].Running.Count(l => l.Holder.Model == q.Model)),
                q.Backends.Where(b => _backends[b].Healthy).Sum(b => _backends[b].Slots),
                TimeSpan.FromMilliseconds(_estimates.ModelServiceMs(q))))];
            backends = [.. _backends.Select(b => new BackendSnapshot(
                b.Name, b.Slots, b.Running.Count, b.Healthy, b.Models, b.Completed,
                b.BusySlotSeconds(now) / (b.Slots * uptime)))];
            counts = _stats.Counts();
            peakRunning = _stats.PeakRunning;
            refused = _stats.RefusedByReason();
            waits = _stats.CopyWaitSamples();
        }

        return new SchedulerSnapshot
        {
            TakenAt = now,
            Admitted = counts.Admitted,
            Completed = counts.Completed,
            Failed = counts.Failed,
            Cancelled = counts.Cancelled,
            TimedOut = counts.TimedOut,
            Refused = counts.Refused,
            RefusedByReason = refused,
            Requeued = counts.Requeued,
            Waiting = counts.Waiting,
            Running = counts.Running,
            PeakRunning = peakRunning,
            Models = models,
            Backends = backends,
            // Sorted here, not under the lock: admissions and dispatches need not wait for a dashboard.
            Wait = QueueStatistics.Percentiles(waits),
        };
    }

    private WaitingPlace? PlaceLocked(SchedulerTicket ticket)
    {
        if (ticket.State != TicketState.Waiting)
        {
            return null;
        }

        var queue = ticket.Lane!.Queue;
        int position = queue.Waiting.Rank(ticket) + 1;
        return new WaitingPlace(position, queue.Waiting.Count, _estimates.Wait(queue, position, Now));
    }
}
