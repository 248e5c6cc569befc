namespace Anteroom.Simulator.Generation;

/// <summary>
/// The counters behind <see cref="SimulatorStats"/>. Waiters see every change: each one's condition is checked
/// against the snapshot taken at that change, so a short-lived state (one queued request, say) is not missed.
/// </summary>
internal sealed class StatsBoard
{
    private readonly Lock _lock = new();
    private readonly List<StatsWaiter> _waiters = [];
    private int _active, _queued, _completed, _cancelled, _failed, _rejected, _peakActive, _stalled;
    private long _tokens, _tokensAfterDisconnect;

    /// <summary>Generations now stopped by an injected stall; visible to tests, not part of the public snapshot.</summary>
    public int Stalled
    {
        get
        {
            lock (_lock)
                return _stalled;
        }
    }

    public SimulatorStats Snapshot()
    {
        lock (_lock)
            return SnapshotLocked();
    }

    /// <summary>
    /// Records slot occupancy and, with it atomically, an outcome or a rejection. The caller holds its own lock
    /// (so changes land in order) and calls <see cref="Changed.Notify"/> once it has released it.
    /// </summary>
    public Changed Publish(int active, int queued, GenerationOutcome? outcome = null, bool rejected = false)
    {
        Changed changed;
        lock (_lock)
        {
            _active = active;
            _queued = queued;
            _peakActive = Math.Max(_peakActive, active);
            if (rejected)
                _rejected++;
            switch (outcome)
            {
                case GenerationOutcome.Completed: _completed++; break;
                case GenerationOutcome.Cancelled: _cancelled++; break;
                case GenerationOutcome.Failed: _failed++; break;
                case null: break;
            }

            changed = CaptureLocked();
        }

        return changed;
    }

    public void TokenProduced(bool afterDisconnect)
    {
        Changed changed;
        lock (_lock)
        {
            _tokens++;
            if (afterDisconnect)
                _tokensAfterDisconnect++;
            changed = CaptureLocked();
        }

        changed.Notify();
    }

    public void StallBegan() => AdjustStalled(+1);

    public void StallEnded() => AdjustStalled(-1);

    public async Task WaitUntilAsync(Func<SimulatorStats, bool> condition, CancellationToken cancellationToken)
    {
        var waiter = new StatsWaiter(condition);
        SimulatorStats current;
        lock (_lock)
        {
            _waiters.Add(waiter);
            current = SnapshotLocked();
        }

        try
        {
            waiter.Check(current);
            await waiter.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (_lock)
                _waiters.Remove(waiter);
        }
    }

    private void AdjustStalled(int delta)
    {
        Changed changed;
        lock (_lock)
        {
            _stalled += delta;
            changed = CaptureLocked();
        }

        changed.Notify();
    }

    /// <summary>The snapshot and waiters to notify, taken under the lock; nothing is allocated while nobody waits.</summary>
    private Changed CaptureLocked() =>
        _waiters.Count == 0 ? default : new Changed(SnapshotLocked(), [.. _waiters]);

    private SimulatorStats SnapshotLocked() => new()
    {
        Active = _active,
        Queued = _queued,
        Completed = _completed,
        Cancelled = _cancelled,
        Failed = _failed,
        Rejected = _rejected,
        PeakActive = _peakActive,
        TokensGenerated = _tokens,
        TokensAfterDisconnect = _tokensAfterDisconnect,
    };

    /// <summary>A change still to be shown to the waiters.</summary>
    internal readonly record struct Changed(SimulatorStats? Snapshot, StatsWaiter[]? Waiters)
    {
        // Conditions are caller code: they run here, after the lock is released.
        public void Notify()
        {
            if (Waiters is null)
                return;
            foreach (var waiter in Waiters)
                waiter.Check(Snapshot!);
        }
    }

    internal sealed class StatsWaiter(Func<SimulatorStats, bool> condition)
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Task => _done.Task;

        public void Check(SimulatorStats stats)
        {
            if (_done.Task.IsCompleted)
                return;
            try
            {
                if (condition(stats))
                    _done.TrySetResult();
            }
            catch (Exception exception)
            {
                _done.TrySetException(exception);
            }
        }
    }
}
