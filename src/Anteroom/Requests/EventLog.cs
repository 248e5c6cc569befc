namespace Anteroom.Requests;

/// <summary>One event of a request's stream: its id (1, 2, …), assigned by the log, and what happened.</summary>
internal readonly record struct StreamEvent(long Id, RequestEvent Event);

/// <summary>What <see cref="EventLog.CopyAfter"/> found.</summary>
internal enum LogRead
{
    /// <summary>Everything after the id was copied; more may come.</summary>
    Open,

    /// <summary>Everything after the id was copied, and the log is closed.</summary>
    Complete,

    /// <summary>Events right after the id are no longer kept: nothing was copied.</summary>
    Dropped,
}

/// <summary>
/// The record of everything a request's holder was told. Connections read it from any id onward, so a client that
/// reconnects with <c>Last-Event-ID</c> misses nothing it can still be given, and several can follow one request.
/// </summary>
/// <remarks>
/// It keeps at most its byte budget of events (each counted by <see cref="RequestEvent.Size"/>: its text in UTF-8,
/// or its relayed bytes, and a small overhead): beyond it the oldest events are dropped (never the last one),
/// so a request whose reader does not keep up holds a bounded amount of memory, not its whole answer. A reader
/// that needs a dropped event is told so (<see cref="LogRead.Dropped"/>), and a following reader (a
/// <see cref="Cursor"/>) whose next event is dropped has its <see cref="Cursor.Overran"/> cancelled at once, even
/// while it waits for a slow client to take what it wrote.
/// </remarks>
internal sealed class EventLog(long maxBytes = long.MaxValue)
{
    private readonly object _gate = new();
    private readonly List<StreamEvent> _events = [];
    private readonly List<Cursor> _cursors = [];
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // _events[_head..] are kept; the ones before it are dropped and compacted away now and then.
    private int _head;
    private long _lastId;
    private long _bytes;
    private bool _complete;

    /// <summary>The most bytes of events kept.</summary>
    public long MaxBytes => maxBytes;

    public long LastId
    {
        get
        {
            lock (_gate)
            {
                return _lastId;
            }
        }
    }

    /// <summary>The id of the oldest event kept (one past <see cref="LastId"/> while empty).</summary>
    public long FirstKeptId
    {
        get
        {
            lock (_gate)
            {
                return FirstKeptIdLocked;
            }
        }
    }

    /// <summary>The bytes of events kept now.</summary>
    public long BufferedBytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    public bool IsComplete
    {
        get
        {
            lock (_gate)
            {
                return _complete;
            }
        }
    }

    private long FirstKeptIdLocked => _lastId - (_events.Count - _head) + 1;

    /// <summary>Appends an event; an ending closes the log. Appending to a closed log is a bug.</summary>
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
    /// Copies the events after <paramref name="afterId"/> into <paramref name="into"/>; when the log is open,
    /// <paramref name="appended"/> completes at the next append.
    /// </summary>
    public LogRead CopyAfter(long afterId, List<StreamEvent> into, out Task appended)
    {
        lock (_gate)
        {
            appended = _appended.Task;
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

    /// <summary>Starts following the log after <paramref name="afterId"/>; dispose the cursor when done.</summary>
    public Cursor Follow(long afterId)
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
    internal sealed class Cursor : IDisposable
    {
        private readonly EventLog _log;
        private readonly CancellationTokenSource _overrun = new();
        private long _position;

        public Cursor(EventLog log, long position)
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
