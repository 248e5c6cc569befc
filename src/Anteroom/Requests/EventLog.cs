namespace Anteroom.Requests;

/// <summary>One event of a request's stream: its id (1, 2, …), its name and its JSON payload.</summary>
internal readonly record struct StreamEvent(long Id, string Type, byte[] Data);

/// <summary>
/// The append-only record of everything a request's holder was told. Connections read it from any id onward,
/// so a client that reconnects with <c>Last-Event-ID</c> misses nothing, and several can follow one request.
/// </summary>
internal sealed class EventLog
{
    private readonly object _gate = new();
    private readonly List<StreamEvent> _events = [];
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _complete;

    public long LastId
    {
        get
        {
            lock (_gate)
            {
                return _events.Count;
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

    /// <summary>Appends an event; a final event closes the log. Appending to a closed log is a bug.</summary>
    public void Append(string type, byte[] data, bool final = false)
    {
        TaskCompletionSource appended;
        lock (_gate)
        {
            if (_complete)
            {
                throw new InvalidOperationException($"The request already ended; cannot append '{type}'.");
            }

            _events.Add(new StreamEvent(_events.Count + 1, type, data));
            _complete = final;
            appended = _appended;
            _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        appended.TrySetResult();
    }

    /// <summary>
    /// Copies the events after <paramref name="afterId"/> into <paramref name="into"/>. Returns whether the log is
    /// closed (and everything was copied); otherwise <paramref name="appended"/> completes at the next append.
    /// </summary>
    public bool CopyAfter(long afterId, List<StreamEvent> into, out Task appended)
    {
        lock (_gate)
        {
            for (long i = Math.Max(afterId, 0); i < _events.Count; i++)
            {
                into.Add(_events[(int)i]);
            }

            appended = _appended.Task;
            return _complete;
        }
    }
}
