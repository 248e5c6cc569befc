namespace Anteroom.Scheduling;

/// <summary>
/// When waiting tickets time out: a heap of (id, due) and one timer armed for the earliest. Entries are not
/// removed when their ticket runs, ends or gets a new deadline; they are dropped as stale when they reach the top.
/// Used under the <see cref="Scheduler"/>'s lock; the timer calls back outside it.
/// </summary>
internal sealed class DeadlineQueue : IDisposable
{
    // Ids, not tickets: an entry stays until it reaches the top, long after its ticket ran or was cancelled, and must
    // not keep the ended ticket (and all it references) reachable until then.
    private readonly PriorityQueue<string, long> _due = new();
    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private long _armed = long.MaxValue;

    public DeadlineQueue(TimeProvider time, Action onDue)
    {
        _time = time;
        _timer = time.CreateTimer(static state => ((Action)state!)(), onDue, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public void Add(string id, long dueTicks)
    {
        _due.Enqueue(id, dueTicks);
        if (dueTicks < _armed)
        {
            Arm(dueTicks);
        }
    }

    /// <summary>
    /// Takes the entries that are due, in order: <paramref name="isCurrent"/> tells whether an entry still stands
    /// for a waiting ticket, <paramref name="expire"/> ends one. Re-arms the timer for the first current entry not
    /// yet due.
    /// </summary>
    public void Expire<TState>(TState state, Func<TState, string, long, bool> isCurrent, Action<TState, string> expire)
    {
        long now = _time.GetUtcNow().UtcTicks;
        _armed = long.MaxValue;
        while (_due.TryPeek(out string? id, out long due))
        {
            bool current = isCurrent(state, id, due);
            if (current && due > now)
            {
                Arm(due);
                return;
            }

            _due.Dequeue();
            if (current)
            {
                expire(state, id);
            }
        }
    }

    public void Dispose() => _timer.Dispose();

    private void Arm(long dueTicks)
    {
        _armed = dueTicks;
        // At least one tick ahead: a timer due now could fire on this thread while the lock is held.
        var delay = TimeSpan.FromTicks(Math.Max(dueTicks - _time.GetUtcNow().UtcTicks, 1));
        _timer.Change(delay, Timeout.InfiniteTimeSpan);
    }
}
