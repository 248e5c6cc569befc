namespace Anteroom.Requests;

/// <summary>
/// The in-process <see cref="IEventLog"/>: a request's events in memory, for a single gateway. Reads complete at once.
/// </summary>
/// <remarks>
/// It keeps at most its byte budget of events (each counted by <see cref="RequestEvent.Size"/>: its text in UTF-8,
/// or its relayed bytes, and a small overhead): beyond it the oldest events are dropped (never the last one),
/// so a request whose reader does not keep up holds a bounded amount of memory, not its whole answer. A reader
/// that needs a dropped event is told so (<see cref="LogRead.Dropped"/>), and a following reader (a
/// <see cref="Cursor"/>) whose next event is dropped has its <see cref="Cursor.Overran"/> cancelled at once, even
/// while it waits for a slow client to take what it wrote.
/// </remarks>
internal sealed class InProcessEventLog(long maxBytes = long.MaxValue, TimeProvider? time = null) : IEventLog
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly object _gate = new();
    private readonly List<StreamEvent> _events = [];
    private readonly List<Cursor> _cursors = [];
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // _events[_head..] are kept; the ones before it are dropped and compacted away now and then.
    private int _head;
    private long _lastId;
    private long _bytes;
    private bool _complete;

    /// <inheritdoc />
    public long MaxBytes => maxBytes;

    private long FirstKeptIdLocked => _lastId - (_events.Count - _head) + 1;

    /// <inheritdoc />
    public void Append(RequestEvent requestEvent)
    {
        TaskCompletionSource appended;
        List<Cursor>? overrun = null;
        lock (_gate)
        {
            if (_complete)
            {
                throw new InvalidOperationException($"The request already ended; cannot append '{requestEvent.Name}'.");
            }

            _events.Add(new StreamEvent(++_lastId, requestEvent));
            _bytes += requestEvent.Size;
            _complete = requestEvent is RequestEnding;
            appended = _appended;
            _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_bytes > maxBytes)
            {
                DropOldestLocked();
                long firstKept = FirstKeptIdLocked;
                foreach (var cursor in _cursors)
                {
                    if (cursor.Position < firstKept - 1)
                    {
                        (overrun ??= []).Add(cursor);
                    }
                }
            }
        }

        appended.TrySetResult();
        if (overrun is not null)
        {
            // Outside the lock: cancelling runs the readers' callbacks.
            foreach (var cursor in overrun)
            {
                cursor.Overrun();
            }
        }
    }

    /// <summary>
    /// Fills an empty log with the events another writer had appended (consecutive ids, none an ending), so the ids
    /// of what this one appends continue after them.
    /// </summary>
    internal void Seed(IReadOnlyList<StreamEvent> events)
    {
        lock (_gate)
        {
            if (_lastId != 0)
            {
                throw new InvalidOperationException("Only an empty log can be seeded.");
            }

            foreach (var streamEvent in events)
            {
                if (_events.Count > 0 && streamEvent.Id != _lastId + 1 || streamEvent.Event is RequestEnding)
                {
                    throw new ArgumentException("A seed is consecutive events that do not end the log.", nameof(events));
                }

                _events.Add(streamEvent);
                _lastId = streamEvent.Id;
                _bytes += streamEvent.Event.Size;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<LogWindow> GetWindowAsync(CancellationToken cancellationToken = default) => new(Window);

    /// <summary>Which events are kept now, and whether the log is closed (what <see cref="GetWindowAsync"/> answers, at once).</summary>
    internal LogWindow Window
    {
        get
        {
            lock (_gate)
            {
                return new LogWindow(FirstKeptIdLocked, _lastId, _bytes, _complete);
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<LogRead> ReadAfterAsync(long afterId, List<StreamEvent> into, CancellationToken cancellationToken = default) =>
        new(CopyAfter(afterId, into));

    /// <inheritdoc />
    public ValueTask<bool> WaitAfterAsync(long afterId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Task appended;
        lock (_gate)
        {
            if (_lastId > afterId || _complete)
            {
                return new(true);
            }

            appended = _appended.Task;
        }

        return WaitAsync(appended, timeout, cancellationToken);
    }

    /// <summary>
    /// Copies the kept events after <paramref name="afterId"/> (from the oldest kept when older ones were asked for)
    /// and returns the window they were copied from, in one step: what a mirror of the log sends on.
    /// </summary>
    internal LogWindow CopyKeptAfter(long afterId, List<StreamEvent> into)
    {
        lock (_gate)
        {
            long firstKept = FirstKeptIdLocked;
            for (long id = Math.Max(afterId + 1, firstKept); id <= _lastId; id++)
            {
                into.Add(_events[_head + (int)(id - firstKept)]);
            }

            return new LogWindow(firstKept, _lastId, _bytes, _complete);
        }
    }

    /// <summary>What <see cref="ReadAfterAsync"/> does, at once.</summary>
    internal LogRead CopyAfter(long afterId, List<StreamEvent> into)
    {
        lock (_gate)
        {
            long firstKept = FirstKeptIdLocked;
            afterId = Math.Max(afterId, 0);
            if (afterId < firstKept - 1)
            {
                return LogRead.Dropped;
            }

            for (long id = afterId + 1; id <= _lastId; id++)
            {
                into.Add(_events[_head + (int)(id - firstKept)]);
            }

            return _complete ? LogRead.Complete : LogRead.Open;
        }
    }

    private async ValueTask<bool> WaitAsync(Task appended, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await appended.WaitAsync(timeout, _time, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>How many readers follow the log now.</summary>
    public int Followers
    {
        get
        {
            lock (_gate)
            {
                return _cursors.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<int> CountFollowersAsync(CancellationToken cancellationToken = default) => new(Followers);

    /// <inheritdoc />
    public ILogCursor Follow(long afterId)
    {
        var cursor = new Cursor(this, afterId);
        lock (_gate)
        {
            _cursors.Add(cursor);
        }

        return cursor;
    }

    private void DropOldestLocked()
    {
        // The newest event always stays: it may be the end, which every reader must still be able to learn.
        while (_bytes > maxBytes && _events.Count - _head > 1)
        {
            _bytes -= _events[_head].Event.Size;
            _events[_head++] = default;
        }

        if (_head > 64 && _head * 2 > _events.Count)
        {
            _events.RemoveRange(0, _head);
            _head = 0;
        }
    }

    private void Forget(Cursor cursor)
    {
        lock (_gate)
        {
            _cursors.Remove(cursor);
        }
    }

    /// <summary>One reader's place in the log: the last event it was given.</summary>
    internal sealed class Cursor : ILogCursor
    {
        private readonly InProcessEventLog _log;
        private readonly CancellationTokenSource _overrun = new();
        private long _position;

        public Cursor(InProcessEventLog log, long position)
        {
            _log = log;
            _position = position;
        }

        /// <summary>The id of the last event the reader was given.</summary>
        public long Position
        {
            get => Volatile.Read(ref _position);
            set => Volatile.Write(ref _position, value);
        }

        /// <summary>Cancelled when an event the reader has not been given yet is dropped: it fell too far behind.</summary>
        public CancellationToken Overran => _overrun.Token;

        public void Dispose()
        {
            _log.Forget(this);
            _overrun.Dispose();
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
