using Anteroom.Shared;

namespace Anteroom.Requests;

/// <summary>
/// The event log of a request this replica runs, mirrored to a Redis stream so that a client of any replica can
/// read it (<see cref="RedisEventLogFactory.OpenAsync"/>) and resume with <c>Last-Event-ID</c>.
/// </summary>
/// <remarks>
/// The log itself is an <see cref="InProcessEventLog"/>, and everything but the follower count is answered from
/// it: the readers of the replica that runs a request (nearly always its own client) read at memory speed, and a
/// running stream finishes even while Redis is away. <see cref="Append"/> only appends there and wakes a pump that
/// sends what the stream does not have yet, in order, as one script per batch: however fast tokens come, one
/// round trip (and one state machine) carries all that arrived meanwhile. The pump reads from the log itself, so it
/// holds nothing of its own: events dropped before they were sent are simply never sent, and the stream is trimmed
/// to the same window.
/// <para>
/// When Redis cannot be reached the pump stops and the factory restarts it once the connection is back. A Redis
/// that came back empty (restarted) is noticed by the script (the stream's last id is not the one sent last), and
/// the whole window is sent again.
/// </para>
/// <para>
/// A log has one writer at a time, marked in Redis. When a replica is taken for dead (its lease ran out) and another
/// takes its request over (<see cref="RedisEventLogFactory.TakeOverAsync"/>), the new writer's mark replaces the
/// old one; should the old replica only have stalled, its later writes are refused, and it keeps serving its own
/// readers from memory without overwriting what the new writer sends.
/// </para>
/// </remarks>
internal sealed class RedisEventLog : IEventLog
{
    private readonly RedisEventLogFactory _factory;
    private readonly InProcessEventLog _local;
    private readonly object _gate = new();
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Counts every change to send (events, followers coming and going); the pump records how many it has sent.
    private long _changes;
    private long _sentChanges;
    // Only the running pump (one at a time, by _pumping) touches these two.
    private long _sentLastId;
    private bool _resync;
    private int _pumping;
    private int _followerDelta;
    private int _localFollowers;
    private Exception? _failure;
    // This writer's mark on the stream; a log taken over from a writer that was taken for gone writes it over theirs.
    private readonly string _writer = RedisEventLogFactory.NewWriter();
    private bool _takeOver;
    // Set once another replica took this log over: this one then only serves its own readers from memory.
    private bool _disowned;

    /// <param name="factory">Where it is sent.</param>
    /// <param name="requestId">Whose log it is.</param>
    /// <param name="maxBytes">The most bytes of events kept.</param>
    /// <param name="time">The clock.</param>
    /// <param name="taken">
    /// The events of a log taken over from a writer that is gone: kept here as if appended, and the stream is
    /// written again whole with this replica's follower count (the gone writer's readers went with it).
    /// </param>
    internal RedisEventLog(RedisEventLogFactory factory, string requestId, long maxBytes, TimeProvider time, IReadOnlyList<StreamEvent>? taken = null)
    {
        _factory = factory;
        RequestId = requestId;
        _local = new InProcessEventLog(maxBytes, time);
        if (taken is { Count: > 0 })
        {
            _local.Seed(taken);
            _sentLastId = taken[^1].Id;
            _resync = true;
            _takeOver = true;
            Interlocked.Increment(ref _changes);
            Pump();
        }
    }

    public string RequestId { get; }

    /// <inheritdoc />
    public long MaxBytes => _local.MaxBytes;

    /// <inheritdoc />
    public void Append(RequestEvent requestEvent)
    {
        _local.Append(requestEvent);
        Interlocked.Increment(ref _changes);
        Pump();
    }

    /// <inheritdoc />
    public ValueTask<LogWindow> GetWindowAsync(CancellationToken cancellationToken = default) => new(_local.Window);

    /// <inheritdoc />
    public ValueTask<LogRead> ReadAfterAsync(long afterId, List<StreamEvent> into, CancellationToken cancellationToken = default) =>
        new(_local.CopyAfter(afterId, into));

    /// <inheritdoc />
    public ValueTask<bool> WaitAfterAsync(long afterId, TimeSpan timeout, CancellationToken cancellationToken) =>
        _local.WaitAfterAsync(afterId, timeout, cancellationToken);

    /// <inheritdoc />
    public ILogCursor Follow(long afterId)
    {
        var cursor = new Cursor(this, _local.Follow(afterId));
        Interlocked.Increment(ref _localFollowers);
        Interlocked.Increment(ref _followerDelta);
        Interlocked.Increment(ref _changes);
        Pump();
        return cursor;
    }

    /// <inheritdoc />
    /// <remarks>Counted in Redis, so readers following from other replicas count too (once what is queued is sent).</remarks>
    public async ValueTask<int> CountFollowersAsync(CancellationToken cancellationToken = default)
    {
        await FlushAsync(cancellationToken);
        return await _factory.CountFollowersAsync(RequestId);
    }

    /// <summary>Completes once everything appended (and every follower change) before the call is in Redis.</summary>
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        long target = Volatile.Read(ref _changes);
        while (true)
        {
            Task progress;
            lock (_gate)
            {
                if (Volatile.Read(ref _sentChanges) >= target)
                {
                    return;
                }

                if (_failure is { } failure)
                {
                    if (!_factory.Connection.IsConnected)
                    {
                        throw SharedState.Unavailable(failure);
                    }

                    // Redis is back, and the notice that would restart the pump may still be on its way (the
                    // subscription's connection can come back before the one commands use): try again now.
                    _failure = null;
                }

                progress = _progress.Task;
            }

            Pump();
            await progress.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Starts the pump again after Redis came back.</summary>
    internal void Resume()
    {
        lock (_gate)
        {
            _failure = null;
        }

        Pump();
    }

    /// <summary>Starts the pump unless it runs already (or waits for Redis to come back).</summary>
    private void Pump()
    {
        if (Volatile.Read(ref _disowned))
        {
            // Nothing more goes to Redis; whoever waits for what was appended to be sent waits for nothing.
            lock (_gate)
            {
                Volatile.Write(ref _sentChanges, Volatile.Read(ref _changes));
                _progress.TrySetResult();
                _progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            return;
        }

        if (Volatile.Read(ref _failure) is null && Interlocked.CompareExchange(ref _pumping, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static log => _ = log.PumpAsync(), this, preferLocal: false);
        }
    }

    private async Task PumpAsync()
    {
        var batch = new List<StreamEvent>();
        while (true)
        {
            if (Volatile.Read(ref _disowned))
            {
                Volatile.Write(ref _pumping, 0);
                Pump();
                return;
            }

            // Read before the snapshot: every change counted here is in it.
            long changes = Volatile.Read(ref _changes);
            batch.Clear();
            bool resync = _resync;
            var window = _local.CopyKeptAfter(resync ? 0 : _sentLastId, batch);
            int delta = Interlocked.Exchange(ref _followerDelta, 0);
            if (batch.Count > 0 || delta != 0 || resync || window.LastId != _sentLastId)
            {
                var write = new RedisEventLogFactory.Write(
                    window, batch, resync ? Volatile.Read(ref _localFollowers) : delta, _sentLastId,
                    _takeOver ? RedisEventLogFactory.WriteMode.TakeOver
                        : resync ? RedisEventLogFactory.WriteMode.Reset
                        : batch.Count == 0 && window.IsComplete ? RedisEventLogFactory.WriteMode.OnlyIfKept
                        : RedisEventLogFactory.WriteMode.Append,
                    _local.MaxBytes,
                    _writer);
                RedisEventLogFactory.WriteResult result;
                try
                {
                    result = await _factory.WriteAsync(RequestId, write);
                }
                catch (Exception e)
                {
                    if (!resync)
                    {
                        Interlocked.Add(ref _followerDelta, delta);
                    }

                    Stall(e);
                    return;
                }

                if (result == RedisEventLogFactory.WriteResult.Lost)
                {
                    // Redis lost the stream (it restarted empty): send the whole window again.
                    _resync = true;
                    continue;
                }

                if (result == RedisEventLogFactory.WriteResult.Disowned)
                {
                    // Another replica took this request for gone and took its log over: what it writes stands.
                    Volatile.Write(ref _disowned, true);
                }

                _resync = false;
                _takeOver = false;
                _sentLastId = window.LastId;
            }

            lock (_gate)
            {
                Volatile.Write(ref _sentChanges, changes);
                _progress.TrySetResult();
                _progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            Volatile.Write(ref _pumping, 0);
            // A change that came after the snapshot saw the pump still running and left it to it.
            if (Volatile.Read(ref _changes) == changes || Interlocked.CompareExchange(ref _pumping, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private void Stall(Exception failure)
    {
        lock (_gate)
        {
            _failure = failure;
            _progress.TrySetResult();
            _progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        Volatile.Write(ref _pumping, 0);
        _factory.Stalled(this, failure);
    }

    private void Unfollow()
    {
        Interlocked.Decrement(ref _localFollowers);
        Interlocked.Decrement(ref _followerDelta);
        Interlocked.Increment(ref _changes);
        Pump();
    }

    /// <summary>A local reader's place, counted in Redis while it lasts.</summary>
    private sealed class Cursor(RedisEventLog log, ILogCursor inner) : ILogCursor
    {
        private int _disposed;

        public long Position
        {
            get => inner.Position;
            set => inner.Position = value;
        }

        public CancellationToken Overran => inner.Overran;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                inner.Dispose();
                log.Unfollow();
            }
        }
    }
}
