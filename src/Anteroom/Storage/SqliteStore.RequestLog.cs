using Microsoft.Data.Sqlite;

namespace Anteroom.Storage;

internal sealed partial class SqliteStore
{
    private const string RequestColumns =
        "request_id, at, owner, key_id, tier, api, model, backend, outcome, reason, waited_ms, first_token_ms, ran_ms, tokens_in, tokens_out";

    private readonly RequestLogQueue _requestLog;
    // Used only by the queue's writer, one batch at a time.
    private RequestLogWriter? _logWriter;

    /// <summary>Request log entries dropped so far because the write queue was full (or the store disposed).</summary>
    public long DroppedRequestLogEntries => _requestLog.Dropped;

    public void Record(RequestLogEntry entry) => _requestLog.Record(entry);

    public Task FlushAsync(CancellationToken cancellationToken = default) => _requestLog.FlushAsync(cancellationToken);

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

    // Synchronous inside: Microsoft.Data.Sqlite's I/O is synchronous anyway, and this runs on the queue's writer.
    private Task WriteBatch(List<RequestLogEntry> batch)
    {
        var writer = _logWriter ??= new RequestLogWriter(Connect());
        try
        {
            writer.Write(batch);
            return Task.CompletedTask;
        }
        catch
        {
            // A connection in an unknown state is not reused: the next batch opens a fresh one.
            _logWriter = null;
            writer.Dispose();
            throw;
        }
    }

    /// <summary>Called by the queue's writer once it has drained the queue for good.</summary>
    private void StopWriting()
    {
        _logWriter?.Dispose();
        _logWriter = null;
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
}
