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

    /// <summary>Records slot occupancy and, with it atomically, an outcome or a rejection.</summary>
    public void Publish(int active, int queued, GenerationOutcome? outcome = null, bool rejected = false)
    {
        Change(() =>
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
        });
    }

    public void TokenProduced(bool afterDisconnect) => Change(() =>
    {
        _tokens++;
        if (afterDisconnect)
            _tokensAfterDisconnect++;
    });

    public void StallBegan() => Change(() => _stalled++);

    public void StallEnded() => Change(() => _stalled--);

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

    private void Change(Action mutate)
    {
        SimulatorStats? snapshot = null;
        StatsWaiter[]? waiters = null;
        lock (_lock)
        {
            mutate();
            if (_waiters.Count > 0)
            {
                snapshot = SnapshotLocked();
                waiters = [.. _waiters];
            }
        }

        // Conditions are caller code: run them outside the lock.
        if (waiters is not null)
        {
            foreach (var waiter in waiters)
                waiter.Check(snapshot!);
        }
    }

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

    private sealed class StatsWaiter(Func<SimulatorStats, bool> condition)
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
