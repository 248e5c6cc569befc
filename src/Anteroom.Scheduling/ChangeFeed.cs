namespace Anteroom.Scheduling;

/// <summary>
/// Announces that the queue changed, coalesced: many changes within one interval wake each waiter once, so the
/// cost of pushing positions to n waiting holders is n per interval, not n per dispatch. The interval runs from when
/// a change happened: a queue in a shared store may hear of a change (another replica's, over pub/sub) after the
/// interval it belongs to has passed, and then announces it at once.
/// </summary>
internal sealed class ChangeFeed : IDisposable
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ITimer? _timer;
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _version;
    private bool _pending;

    public ChangeFeed(TimeProvider time, TimeSpan interval)
    {
        _time = time;
        _interval = interval;
        if (interval > TimeSpan.Zero)
        {
            _timer = _time.CreateTimer(_ => Publish(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The number of announcements made so far.</summary>
    public long Version => Volatile.Read(ref _version);

    /// <summary>Marks a change made now; it is announced now or at the end of the current interval.</summary>
    public void Changed() => Changed(null);

    /// <summary>Marks a change made at <paramref name="at"/>: announced at the end of its interval, or now if that has passed.</summary>
    public void Changed(DateTimeOffset at) => Changed((DateTimeOffset?)at);

    // A change made now needs no clock reading: it is announced one interval from now.
    private void Changed(DateTimeOffset? at)
    {
        if (_timer is null)
        {
            Publish();
            return;
        }

        lock (_gate)
        {
            if (_pending)
            {
                return;
            }

            _pending = true;
        }

        var delay = at is { } made ? made + _interval - _time.GetUtcNow() : _interval;
        if (delay <= TimeSpan.Zero)
        {
            Publish();
        }
        else
        {
            _timer.Change(delay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Completes once an announcement after <paramref name="seenVersion"/> has been made.</summary>
    public Task WaitAsync(long seenVersion, CancellationToken cancellationToken)
    {
        Task next;
        lock (_gate)
        {
            if (_version > seenVersion)
            {
                return Task.CompletedTask;
            }

            next = _next.Task;
        }

        return cancellationToken.CanBeCanceled ? next.WaitAsync(cancellationToken) : next;
    }

    private void Publish()
    {
        TaskCompletionSource announced;
        lock (_gate)
        {
            _pending = false;
            _version++;
            announced = _next;
            _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        announced.TrySetResult();
    }

    public void Dispose() => _timer?.Dispose();
}
