using Npgsql;

namespace Anteroom.Storage;

internal sealed partial class PostgresStore
{
    private const string RequestColumns =
        "request_id, at, owner, key_id, tier, api, model, backend, outcome, reason, waited_ms, first_token_ms, ran_ms, tokens_in, tokens_out";

    private readonly RequestLogQueue _requestLog;

    /// <summary>Request log entries dropped so far because the write queue was full (or the store disposed).</summary>
    public long DroppedRequestLogEntries => _requestLog.Dropped;

    public void Record(RequestLogEntry entry) => _requestLog.Record(entry);

    public Task FlushAsync(CancellationToken cancellationToken = default) => _requestLog.FlushAsync(cancellationToken);

    public async Task<IReadOnlyList<RequestLogEntry>> ReadRequestsAsync(
        DateTimeOffset since, DateTimeOffset until, string? owner, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        await using var command = Command($"""
            SELECT {RequestColumns} FROM request_log
            WHERE at >= @since AND at < @until AND (@owner::text IS NULL OR owner = @owner)
            ORDER BY at DESC, id DESC
            LIMIT @limit;
            """)
            .With("since", ToUnixMs(since))
            .With("until", ToUnixMs(until))
            .With("owner", owner)
            .With("limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var entries = new List<RequestLogEntry>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(ReadRequest(reader));
        }

        return entries;
    }

    public async Task<int> ForgetRequestsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        // In bounded steps, so the writers of every gateway never wait long behind one large transaction.
        const int Step = 10_000;
        int total = 0;
        await using var command = Command("""
            DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE at < @cutoff ORDER BY at LIMIT @step);
            """)
            .With("cutoff", ToUnixMs(cutoff))
            .With("step", Step);
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
    /// Writes a batch as one statement: each column travels as one array parameter and <c>unnest</c> turns them back
    /// into rows, in order, so a batch costs one round trip however many gateways write at once.
    /// </summary>
    private async Task WriteBatchAsync(List<RequestLogEntry> batch)
    {
        await using var command = Command($"""
            INSERT INTO request_log ({RequestColumns})
            SELECT {RequestColumns}
            FROM unnest(@request, @at, @owner, @key, @tier, @api, @model, @backend, @outcome, @reason, @waited, @first, @ran, @in, @out)
                WITH ORDINALITY AS batch ({RequestColumns}, position)
            ORDER BY position;
            """)
            .With("request", batch.Select(e => e.RequestId).ToArray())
            .With("at", batch.Select(e => ToUnixMs(e.At)).ToArray())
            .With("owner", batch.Select(e => e.Owner).ToArray())
            .With("key", batch.Select(e => e.KeyId).ToArray())
            .With("tier", batch.Select(e => e.Tier).ToArray())
            .With("api", batch.Select(e => e.Api).ToArray())
            .With("model", batch.Select(e => e.Model).ToArray())
            .With("backend", batch.Select(e => e.Backend).ToArray())
            .With("outcome", batch.Select(e => e.Outcome).ToArray())
            .With("reason", batch.Select(e => e.Reason).ToArray())
            .With("waited", batch.Select(e => e.WaitedMs).ToArray())
            .With("first", batch.Select(e => e.TimeToFirstTokenMs).ToArray())
            .With("ran", batch.Select(e => e.RanMs).ToArray())
            .With("in", batch.Select(e => e.TokensIn).ToArray())
            .With("out", batch.Select(e => e.TokensOut).ToArray());
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    private static RequestLogEntry ReadRequest(NpgsqlDataReader reader) => new(
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
