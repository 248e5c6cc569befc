namespace Anteroom.Scheduling.Redis;

/// <summary>
/// Announces queue changes to this replica's waiters, coalesced as the in-process queue's are, but timed from when
/// a change happened rather than from when this replica heard of it: a lease end settles in the store in the
/// background and another replica's change arrives over pub/sub, and either may arrive after the clock has passed
/// the end of the interval it belongs to; it is then announced at once.
/// </summary>
internal sealed class ChangeAnnouncer : IDisposable
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ITimer? _timer;
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _version;
    private bool _pending;

    public ChangeAnnouncer(TimeProvider time, TimeSpan interval)
    {
        _time = time;
        _interval = interval;
        if (interval > TimeSpan.Zero)
        {
            _timer = time.CreateTimer(static state => ((ChangeAnnouncer)state!).Publish(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The number of announcements made so far.</summary>
    public long Version => Volatile.Read(ref _version);

    /// <summary>Marks a change made at <paramref name="at"/>: announced at the end of its interval, or now if that has passed.</summary>
    public void Changed(DateTimeOffset at)
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

        var delay = at + _interval - _time.GetUtcNow();
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
