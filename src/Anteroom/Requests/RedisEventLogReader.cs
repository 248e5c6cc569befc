using System.Globalization;
using Anteroom.Shared;
using StackExchange.Redis;

namespace Anteroom.Requests;

/// <summary>
/// The log of a request another replica runs, read from its Redis stream (<see cref="RedisEventLogFactory.OpenAsync"/>):
/// how a client that reconnects to this replica with <c>Last-Event-ID</c> gets the rest.
/// </summary>
/// <remarks>
/// Reads are one script (the window and the entries after the id, together). Waits listen on the log's pub/sub
/// channel, where every write announces the new window: the multiplexer's one subscriber connection serves every
/// waiting reader of the replica, where <c>XREAD BLOCK</c> would hold a connection per waiting reader (a blocking
/// command stops a multiplexed connection for everyone else). A replica listens to a log's channel only while a
/// reader waits on it or follows it. A notice lost while the connection is down costs a reader no more than its
/// wait's timeout, after which it reads again.
/// <para>
/// Limits, against the in-process log: a follower here is cut off (<see cref="ILogCursor.Overran"/>) when the
/// write that dropped its next event is announced, not at the append itself; and it is counted in Redis, so the
/// followers of a replica that died stay counted until the log expires.
/// </para>
/// </remarks>
internal sealed class RedisEventLogReader : IEventLog
{
    private readonly RedisEventLogFactory _factory;
    private readonly string _requestId;
    private readonly TimeProvider _time;
    private readonly Action<RedisChannel, RedisValue> _onNotice;
    private readonly object _gate = new();
    private readonly List<Cursor> _cursors = [];
    private TaskCompletionSource<Notice> _notice = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _listeners;
    private Task? _listening;
    private long _lastSeenId;

    internal RedisEventLogReader(RedisEventLogFactory factory, string requestId, long maxBytes, TimeProvider time)
    {
        _factory = factory;
        _requestId = requestId;
        _time = time;
        MaxBytes = maxBytes;
        _onNotice = (_, message) => OnNotice(message);
    }

    /// <inheritdoc />
    public long MaxBytes { get; }

    /// <summary>Refused: only the replica that runs the request writes its log.</summary>
    public void Append(RequestEvent requestEvent) =>
        throw new InvalidOperationException($"The log of {_requestId} is written by the replica that runs it; this one only reads it.");

    /// <inheritdoc />
    /// <remarks>A log no longer kept (expired, or lost with a Redis restart) reads as closed, with nothing kept.</remarks>
    public async ValueTask<LogWindow> GetWindowAsync(CancellationToken cancellationToken = default)
    {
        if (await _factory.GetWindowAsync(_requestId) is { } window)
        {
            Volatile.Write(ref _lastSeenId, window.LastId);
            return window;
        }

        long last = Volatile.Read(ref _lastSeenId);
        return new LogWindow(last + 1, last, 0, true);
    }

    /// <inheritdoc />
    public async ValueTask<LogRead> ReadAfterAsync(long afterId, List<StreamEvent> into, CancellationToken cancellationToken = default)
    {
        var (read, _) = await _factory.ReadAsync(_requestId, afterId, into);
        return read;
    }

    /// <inheritdoc />
    public async ValueTask<bool> WaitAfterAsync(long afterId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        var listening = Listen();
        try
        {
            try
            {
                await listening.WaitAsync(cancellationToken);
            }
            catch (Exception e) when (SharedState.IsUnreachable(e))
            {
                throw SharedState.Unavailable(e);
            }

            while (true)
            {
                // Take the next notice before looking, so a write between the look and the wait is not missed.
                Task<Notice> next;
                lock (_gate)
                {
                    next = _notice.Task;
                }

                var window = await GetWindowAsync(cancellationToken);
                if (window.LastId > afterId || window.IsComplete)
                {
                    return true;
                }

                var left = timeout - _time.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                {
                    return false;
                }

                try
                {
                    var notice = await next.WaitAsync(left, _time, cancellationToken);
                    if (notice.LastId > afterId || notice.Closed)
                    {
                        return true;
                    }
                }
                catch (TimeoutException)
                {
                    return false;
                }
            }
        }
        finally
        {
            Unlisten();
        }
    }

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public ILogCursor Follow(long afterId)
    {
        _factory.ChangeRemoteFollowers(_requestId, +1);
        var cursor = new Cursor(this, afterId);
        lock (_gate)
        {
            _cursors.Add(cursor);
        }

        // Not awaited: until the subscription is in place a cursor learns of drops from its reads instead.
        Listen().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return cursor;
    }

    /// <inheritdoc />
    public ValueTask<int> CountFollowersAsync(CancellationToken cancellationToken = default) =>
        new(_factory.CountFollowersAsync(_requestId));

    private Task Listen()
    {
        lock (_gate)
        {
            if (_listeners++ == 0 || _listening is { IsFaulted: true })
            {
                try
                {
                    SharedState.EnsureConnected(_factory.Connection);
                    _listening = _factory.Subscriber.SubscribeAsync(_factory.Channel(_requestId), _onNotice);
                }
                catch (Exception e)
                {
                    _listening = Task.FromException(e);
                }
            }

            return _listening!;
        }
    }

    private void Unlisten()
    {
        lock (_gate)
        {
            if (--_listeners > 0)
            {
                return;
            }

            _listening = null;
            if (_factory.Connection.IsConnected)
            {
                _factory.Subscriber.UnsubscribeAsync(_factory.Channel(_requestId), _onNotice)
                    .ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }
    }

    private void OnNotice(RedisValue message)
    {
        var parts = ((string)message!).Split(' ');
        var notice = new Notice(
            long.Parse(parts[0], CultureInfo.InvariantCulture),
            long.Parse(parts[1], CultureInfo.InvariantCulture),
            parts[2] == "1");
        TaskCompletionSource<Notice> woken;
        List<Cursor>? overrun = null;
        lock (_gate)
        {
            woken = _notice;
            _notice = new TaskCompletionSource<Notice>(TaskCreationOptions.RunContinuationsAsynchronously);
            foreach (var cursor in _cursors)
            {
                if (cursor.Position < notice.FirstKeptId - 1)
                {
                    (overrun ??= []).Add(cursor);
                }
            }
        }

        woken.TrySetResult(notice);
        foreach (var cursor in overrun ?? [])
        {
            cursor.Overrun();
        }
    }

    private void Forget(Cursor cursor)
    {
        lock (_gate)
        {
            _cursors.Remove(cursor);
        }

        Unlisten();
        try
        {
            _factory.ChangeRemoteFollowers(_requestId, -1);
        }
        catch (SharedStateUnavailableException)
        {
            // Redis is away: the reader stays counted until the log expires (the documented limit above).
        }
    }

    /// <summary>A write announced on the log's channel: its window.</summary>
    private readonly record struct Notice(long LastId, long FirstKeptId, bool Closed);

    private sealed class Cursor(RedisEventLogReader log, long position) : ILogCursor
    {
        private readonly CancellationTokenSource _overrun = new();
        private long _position = position;
        private int _disposed;

        public long Position
        {
            get => Volatile.Read(ref _position);
            set => Volatile.Write(ref _position, value);
        }

        public CancellationToken Overran => _overrun.Token;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                log.Forget(this);
                _overrun.Dispose();
            }
        }

        internal void Overrun()
        {
            try
            {
                _overrun.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The reader left meanwhile.
            }
        }
    }
}
