using System.Threading.Channels;

namespace Anteroom.Storage;

/// <summary>
/// The request log's write path, shared by the stores: <see cref="Record"/> queues an entry and never blocks, a
/// single background writer takes what is waiting (up to a batch) and hands it to the store to write at once, and
/// <see cref="FlushAsync"/> completes once every entry recorded before it is written. A full queue drops entries
/// (counted, and warned of once a minute) rather than pushing back onto requests.
/// </summary>
internal sealed partial class RequestLogQueue : IAsyncDisposable
{
    // Enough to ride out a long stall of the database at thousands of requests a second; beyond it entries are
    // dropped rather than held in memory without bound or pushed back onto requests.
    private const int Capacity = 65_536;
    private const int BatchSize = 500;
    private static readonly TimeSpan DropWarningInterval = TimeSpan.FromMinutes(1);

    private readonly Channel<PendingLogItem> _queue;
    private readonly Func<List<RequestLogEntry>, Task> _writeBatch;
    private readonly Action? _stopped;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Task _writer;
    private long _dropped;
    // A TimeProvider timestamp; long.MinValue until the first warning.
    private long _lastDropWarning = long.MinValue;

    /// <param name="writeBatch">Writes one batch durably, or throws; it is only ever called by one writer at a time.</param>
    /// <param name="stopped">Called by the writer once the queue is completed and drained, to release what it held.</param>
    /// <param name="time">Paces the warnings of dropped entries.</param>
    /// <param name="log">Where failures and drops are reported.</param>
    public RequestLogQueue(Func<List<RequestLogEntry>, Task> writeBatch, Action? stopped, TimeProvider time, ILogger log)
    {
        _writeBatch = writeBatch;
        _stopped = stopped;
        _time = time;
        _log = log;
        _queue = Channel.CreateBounded<PendingLogItem>(new BoundedChannelOptions(Capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _writer = Task.Run(WriteAsync);
    }

    /// <summary>Entries dropped so far because the queue was full (or closed).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Queues an entry; never blocks.</summary>
    public void Record(RequestLogEntry entry)
    {
        if (entry is null || _queue.Writer.TryWrite(new PendingLogItem(entry, null)))
        {
            return;
        }

        long dropped = Interlocked.Increment(ref _dropped);
        WarnOfDropsAtMostOncePerInterval(dropped);
    }

    /// <summary>Completes once every entry recorded before the call is written; fails when some of them were lost.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        // The marker queues behind every entry recorded before this call; the writer completes it once the batch
        // that holds them is committed.
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await _queue.Writer.WriteAsync(new PendingLogItem(null, flushed), cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            // Disposed: the writer drains everything recorded before it stops.
            await _writer.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        await flushed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes every entry recorded so far, then stops the writer.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }

    /// <summary>
    /// The single reader of the queue: takes what is waiting (up to a batch), writes it in one go, then answers the
    /// flush markers that were behind it. Runs until the queue is completed and empty.
    /// </summary>
    private async Task WriteAsync()
    {
        var batch = new List<RequestLogEntry>(BatchSize);
        var markers = new List<TaskCompletionSource>();
        Exception? unreportedFailure = null;
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < BatchSize && reader.TryRead(out var item))
            {
                if (item.Entry is not null)
                {
                    batch.Add(item.Entry);
                }
                else
                {
                    markers.Add(item.Flushed!);
                }
            }

            unreportedFailure = await TryWriteBatchAsync(batch).ConfigureAwait(false) ?? unreportedFailure;
            unreportedFailure = AnswerFlushes(markers, unreportedFailure);
            batch.Clear();
            markers.Clear();
        }

        _stopped?.Invoke();
    }

    /// <summary>Writes the batch; a failure is logged and returned, never thrown, so the writer keeps going.</summary>
    private async Task<Exception?> TryWriteBatchAsync(List<RequestLogEntry> batch)
    {
        if (batch.Count == 0)
        {
            return null;
        }

        try
        {
            await _writeBatch(batch).ConfigureAwait(false);
            return null;
        }
        catch (Exception exception)
        {
            // Whatever went wrong (a full disk, a locked or damaged file, a lost connection), the next batch may
            // still succeed.
            LogWriteFailed(_log, exception, batch.Count);
            return exception;
        }
    }

    /// <summary>
    /// Completes the flush markers. A batch lost since the last flush was answered fails them, so a caller that
    /// waits for durability learns it did not get it; the failure is then reported and forgotten.
    /// </summary>
    private static Exception? AnswerFlushes(List<TaskCompletionSource> markers, Exception? failure)
    {
        if (markers.Count == 0)
        {
            return failure;
        }

        foreach (var marker in markers)
        {
            if (failure is null)
            {
                marker.TrySetResult();
            }
            else
            {
                marker.TrySetException(new IOException("Writing the request log failed; some entries were lost.", failure));
            }
        }

        return null;
    }

    private void WarnOfDropsAtMostOncePerInterval(long dropped)
    {
        long now = _time.GetTimestamp();
        long last = Interlocked.Read(ref _lastDropWarning);
        bool due = last == long.MinValue || _time.GetElapsedTime(last, now) >= DropWarningInterval;
        // Of the callers that find a warning due, only the one that moves the timestamp logs it.
        if (due && Interlocked.CompareExchange(ref _lastDropWarning, now, last) == last)
        {
            LogEntriesDropped(_log, dropped);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The request log could not keep up (queue full) or is closed; {Dropped} entries dropped so far")]
    private static partial void LogEntriesDropped(ILogger logger, long dropped);

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing {Count} request log entries failed; they are lost")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);

    /// <summary>What the queue carries: an entry to write, or a flush waiting for everything before it.</summary>
    private readonly record struct PendingLogItem(RequestLogEntry? Entry, TaskCompletionSource? Flushed);
}
