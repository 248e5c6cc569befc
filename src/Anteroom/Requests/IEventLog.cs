namespace Anteroom.Requests;

/// <summary>One event of a request's stream: its id (1, 2, …), assigned by the log, and what happened.</summary>
internal readonly record struct StreamEvent(long Id, RequestEvent Event);

/// <summary>What <see cref="IEventLog.ReadAfterAsync"/> found.</summary>
internal enum LogRead
{
    /// <summary>Everything after the id was copied; more may come.</summary>
    Open,

    /// <summary>Everything after the id was copied, and the log is closed.</summary>
    Complete,

    /// <summary>Events right after the id are no longer kept: nothing was copied.</summary>
    Dropped,
}

/// <summary>Which events a log keeps: ids <see cref="FirstKeptId"/> to <see cref="LastId"/> (none while the first is past the last).</summary>
internal readonly record struct LogWindow(long FirstKeptId, long LastId, long BufferedBytes, bool IsComplete);

/// <summary>
/// The record of everything a request's holder was told. Connections read it from any id onward, so a client that
/// reconnects with <c>Last-Event-ID</c> misses nothing it can still be given, and several can follow one request.
/// </summary>
/// <remarks>
/// A log keeps at most <see cref="MaxBytes"/> of events (each counted by <see cref="RequestEvent.Size"/>): beyond it
/// the oldest are dropped, never the last one, so the end can always be read. A reader that needs a dropped event
/// is told so (<see cref="LogRead.Dropped"/>), and a following reader (an <see cref="ILogCursor"/>) whose next event
/// is dropped has its <see cref="ILogCursor.Overran"/> cancelled.
/// <para>
/// Shaped for a store over the network (a Redis stream: an append is an <c>XADD</c> with a length cap, a read an
/// <c>XRANGE</c>, a wait an <c>XREAD BLOCK</c>): reads and waits are asynchronous. <see cref="Append"/> is not: it is
/// on the path of every token, where an await would cost a state machine per token; a networked log queues the event
/// and sends it in the background, in order.
/// </para>
/// </remarks>
internal interface IEventLog
{
    /// <summary>The most bytes of events kept.</summary>
    long MaxBytes { get; }

    /// <summary>Appends an event with the next id; an ending closes the log. Appending to a closed log is a bug.</summary>
    void Append(RequestEvent requestEvent);

    /// <summary>Which events are kept now, and whether the log is closed.</summary>
    ValueTask<LogWindow> GetWindowAsync(CancellationToken cancellationToken = default);

    /// <summary>Copies the events after <paramref name="afterId"/> into <paramref name="into"/>, in order.</summary>
    ValueTask<LogRead> ReadAfterAsync(long afterId, List<StreamEvent> into, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits until there is an event after <paramref name="afterId"/> or the log is closed (true), or until
    /// <paramref name="timeout"/> has passed (false).
    /// </summary>
    ValueTask<bool> WaitAfterAsync(long afterId, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Starts following the log after <paramref name="afterId"/>; dispose the cursor when done.</summary>
    ILogCursor Follow(long afterId);

    /// <summary>How many readers follow the log now.</summary>
    ValueTask<int> CountFollowersAsync(CancellationToken cancellationToken = default);
}

/// <summary>One reader's place in a log: the last event it was given.</summary>
internal interface ILogCursor : IDisposable
{
    /// <summary>The id of the last event the reader was given.</summary>
    long Position { get; set; }

    /// <summary>Cancelled when an event the reader has not been given yet is dropped: it fell too far behind.</summary>
    CancellationToken Overran { get; }
}

/// <summary>Opens each admitted request's event log, in whichever store the logs live.</summary>
internal interface IEventLogFactory
{
    /// <summary>A new, empty log for request <paramref name="requestId"/> that keeps at most <paramref name="maxBytes"/> of events.</summary>
    IEventLog Create(string requestId, long maxBytes);

    /// <summary>
    /// The existing log of request <paramref name="requestId"/>, created by another process (a request admitted on
    /// another replica), for reading; null when this store keeps no such log.
    /// </summary>
    ValueTask<IEventLog?> OpenAsync(string requestId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes over the log of request <paramref name="requestId"/> from a writer that is gone (the replica that ran
    /// the request died): a log this process writes from now on, with the kept events and ids continuing after
    /// them; null when this store keeps no such log.
    /// </summary>
    ValueTask<IEventLog?> TakeOverAsync(string requestId, long maxBytes, CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends the log of request <paramref name="requestId"/>, whose writer is gone, with <paramref name="ending"/>,
    /// unless it is closed already or no longer kept.
    /// </summary>
    ValueTask CloseAbandonedAsync(string requestId, RequestEnding ending, CancellationToken cancellationToken = default);
}

/// <summary>Opens logs in memory (<see cref="InProcessEventLog"/>).</summary>
internal sealed class InProcessEventLogFactory(TimeProvider time) : IEventLogFactory
{
    public IEventLog Create(string requestId, long maxBytes) => new InProcessEventLog(maxBytes, time);

    /// <summary>Always null: another process's logs live in its own memory, out of reach.</summary>
    public ValueTask<IEventLog?> OpenAsync(string requestId, CancellationToken cancellationToken = default) => new((IEventLog?)null);

    /// <summary>Always null: no other process writes logs here.</summary>
    public ValueTask<IEventLog?> TakeOverAsync(string requestId, long maxBytes, CancellationToken cancellationToken = default) => new((IEventLog?)null);

    /// <summary>Nothing to do: every log here has its writer in this process.</summary>
    public ValueTask CloseAbandonedAsync(string requestId, RequestEnding ending, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}
