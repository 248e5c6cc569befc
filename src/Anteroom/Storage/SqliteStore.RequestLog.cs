using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Anteroom.Storage;

internal sealed partial class SqliteStore
{
    // Enough to ride out a long stall of the disk at thousands of requests a second; beyond it entries are dropped
    // rather than held in memory without bound or pushed back onto requests.
    private const int RequestQueueCapacity = 65_536;
    private const int RequestBatchSize = 500;
    private static readonly TimeSpan DropWarningInterval = TimeSpan.FromMinutes(1);

    private const string RequestColumns =
        "request_id, at, owner, key_id, tier, api, model, backend, outcome, reason, waited_ms, first_token_ms, ran_ms, tokens_in, tokens_out";

    private readonly Channel<PendingLogItem> _requestQueue;
    private readonly Task _requestWriter;
    // Used only by the writer task, one batch at a time.
    private RequestLogWriter? _logWriter;
    private long _droppedRequests;
    // A TimeProvider timestamp; long.MinValue until the first warning.
    private long _lastDropWarning = long.MinValue;

    /// <summary>Request log entries dropped so far because the write queue was full (or the store disposed).</summary>
    public long DroppedRequestLogEntries => Interlocked.Read(ref _droppedRequests);

    public void Record(RequestLogEntry entry)
    {
        if (entry is null || _requestQueue.Writer.TryWrite(new PendingLogItem(entry, null)))
        {
            return;
        }

        long dropped = Interlocked.Increment(ref _droppedRequests);
        WarnOfDropsAtMostOncePerInterval(dropped);
    }

    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        // The marker queues behind every entry recorded before this call; the writer completes it once the batch
        // that holds them is committed.
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            await _requestQueue.Writer.WriteAsync(new PendingLogItem(null, flushed), cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            // Disposed: the writer drains everything recorded before it stops.
            await _requestWriter.WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        await flushed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<RequestLogEntry>> ReadRequestsAsync(
        DateTimeOffset since, DateTimeOffset until, string? owner, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        using var connection = Connect();
        using var command = Command(connection, $"""
            SELECT {RequestColumns} FROM request_log
            WHERE at >= @since AND at < @until AND (@owner IS NULL OR owner = @owner)
            ORDER BY at DESC, id DESC
            LIMIT @limit;
            """)
            .With("@since", ToUnixMs(since))
            .With("@until", ToUnixMs(until))
            .With("@owner", owner)
            .With("@limit", limit);
        using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var entries = new List<RequestLogEntry>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(ReadRequest(reader));
        }

        return entries;
    }

    public async Task<int> ForgetRequestsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        // In bounded steps, so the writer (which shares the database's single write lock) never waits long behind it.
        const int Step = 10_000;
        int total = 0;
        using var connection = Connect();
        using var command = Command(connection, """
            DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE at < @cutoff ORDER BY at LIMIT @step);
            """)
            .With("@cutoff", ToUnixMs(cutoff))
            .With("@step", Step);
        int deleted;
        do
        {
            deleted = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            total += deleted;
        }
        while (deleted == Step);

        return total;
    }

    /// <summary>
    /// The single reader of the queue: takes what is waiting (up to a batch), writes it in one transaction, then
    /// answers the flush markers that were behind it. Runs until the queue is completed and empty.
    /// </summary>
    private async Task WriteRequestsAsync()
    {
        var batch = new List<RequestLogEntry>(RequestBatchSize);
        var markers = new List<TaskCompletionSource>();
        Exception? unreportedFailure = null;
        var reader = _requestQueue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < RequestBatchSize && reader.TryRead(out var item))
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

            unreportedFailure = TryWriteBatch(batch) ?? unreportedFailure;
            unreportedFailure = AnswerFlushes(markers, unreportedFailure);
            batch.Clear();
            markers.Clear();
        }

        _logWriter?.Dispose();
        _logWriter = null;
    }

    /// <summary>Writes the batch; a failure is logged and returned, never thrown, so the writer keeps going.</summary>
    private Exception? TryWriteBatch(List<RequestLogEntry> batch)
    {
        if (batch.Count == 0)
        {
            return null;
        }

        try
        {
            WriteBatch(batch);
            return null;
        }
        catch (Exception exception)
        {
            // Whatever went wrong (a full disk, a locked or damaged file), the next batch may still succeed.
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

    private void WriteBatch(List<RequestLogEntry> batch)
    {
        var writer = _logWriter ??= new RequestLogWriter(Connect());
        try
        {
            writer.Write(batch);
        }
        catch
        {
            // A connection in an unknown state is not reused: the next batch opens a fresh one.
            _logWriter = null;
            writer.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The writer's own connection and prepared insert, kept for as long as writes succeed. At a few entries per
    /// batch, opening a pooled connection, setting its pragmas and preparing the insert again for every batch cost
    /// more than the inserts.
    /// </summary>
    private sealed class RequestLogWriter : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _insert;
        private readonly SqliteParameter[] _parameters;

        public RequestLogWriter(SqliteConnection connection)
        {
            _connection = connection;
            _insert = Command(connection, $"""
                INSERT INTO request_log ({RequestColumns})
                VALUES (@request, @at, @owner, @key, @tier, @api, @model, @backend, @outcome, @reason, @waited, @first, @ran, @in, @out);
                """);
            _parameters =
            [
                .. new[]
                {
                    "@request", "@at", "@owner", "@key", "@tier", "@api", "@model", "@backend", "@outcome", "@reason",
                    "@waited", "@first", "@ran", "@in", "@out",
                }.Select(name => _insert.Parameters.Add(new SqliteParameter { ParameterName = name })),
            ];
        }

        public void Write(List<RequestLogEntry> batch)
        {
            using var transaction = _connection.BeginTransaction(deferred: false);
            _insert.Transaction = transaction;
            foreach (var entry in batch)
            {
                Set(0, entry.RequestId);
                Set(1, ToUnixMs(entry.At));
                Set(2, entry.Owner);
                Set(3, entry.KeyId);
                Set(4, entry.Tier);
                Set(5, entry.Api);
                Set(6, entry.Model);
                Set(7, entry.Backend);
                Set(8, entry.Outcome);
                Set(9, entry.Reason);
                Set(10, entry.WaitedMs);
                Set(11, entry.TimeToFirstTokenMs);
                Set(12, entry.RanMs);
                Set(13, entry.TokensIn);
                Set(14, entry.TokensOut);
                _insert.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        public void Dispose()
        {
            _insert.Dispose();
            _connection.Dispose();
        }

        private void Set(int index, object? value) => _parameters[index].Value = value ?? DBNull.Value;
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

    private static RequestLogEntry ReadRequest(SqliteDataReader reader) => new(
        RequestId: reader.GetString(0),
        At: FromUnixMs(reader.GetInt64(1)),
        Owner: reader.GetString(2),
        KeyId: GetNullableString(reader, 3),
        Tier: reader.GetString(4),
        Api: reader.GetString(5),
        Model: reader.GetString(6),
        Backend: GetNullableString(reader, 7),
        Outcome: reader.GetString(8),
        Reason: GetNullableString(reader, 9),
        WaitedMs: reader.GetInt64(10),
        TimeToFirstTokenMs: reader.IsDBNull(11) ? null : reader.GetInt64(11),
        RanMs: reader.GetInt64(12),
        TokensIn: reader.GetInt32(13),
        TokensOut: reader.GetInt32(14));

    [LoggerMessage(Level = LogLevel.Warning, Message = "The request log could not keep up (queue full) or is closed; {Dropped} entries dropped so far")]
    private static partial void LogEntriesDropped(ILogger logger, long dropped);

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing {Count} request log entries failed; they are lost")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);

    /// <summary>What the queue carries: an entry to write, or a flush waiting for everything before it.</summary>
    private readonly record struct PendingLogItem(RequestLogEntry? Entry, TaskCompletionSource? Flushed);
}
