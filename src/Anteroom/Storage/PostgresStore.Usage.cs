using System.Data;
using Npgsql;

namespace Anteroom.Storage;

internal sealed partial class PostgresStore
{
    private const long MsPerHour = 3_600_000;

    // What a summary groups by. Only these constants are ever spliced into SQL.
    private const string ByOwner = "owner";
    private const string ByTier = "tier";
    private const string ByHour = "at / 3600000";

    /// <summary>
    /// Counts, refusal reasons and nearest-rank wait percentiles, each computed by the database: only one row per
    /// group (and per group and reason) comes back, however many requests the range holds.
    /// </summary>
    public async Task<UsageReport> SummarizeAsync(DateTimeOffset since, DateTimeOffset until, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var range = (Since: ToUnixMs(since), Until: ToUnixMs(until));
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        // One snapshot for every query, so the counts and the waits agree even while the writers keep adding entries.
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
        var users = await TallyAsync<string>(connection, transaction, ByOwner, range, withReasons: true, cancellationToken).ConfigureAwait(false);
        var tiers = await TallyAsync<string>(connection, transaction, ByTier, range, withReasons: true, cancellationToken).ConfigureAwait(false);
        var hours = await TallyAsync<long>(connection, transaction, ByHour, range, withReasons: false, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new UsageReport(since, until, ToUsageRows(users), ToUsageRows(tiers), ToWaitHours(hours));
    }

    private static List<UsageRow> ToUsageRows(Dictionary<string, UsageTally> tallies) =>
        tallies
            .Select(pair => pair.Value.ToUsageRow(pair.Key))
            .OrderByDescending(row => row.Requests + row.Refused)
            .ThenBy(row => row.Name, StringComparer.Ordinal)
            .ToList();

    private static List<WaitHour> ToWaitHours(Dictionary<long, UsageTally> tallies) =>
        tallies
            .OrderBy(pair => pair.Key)
            .Select(pair => new WaitHour(
                FromUnixMs(pair.Key * MsPerHour), pair.Value.Requests, pair.Value.Refused, pair.Value.WaitP50Ms, pair.Value.WaitP95Ms))
            .ToList();

    private static async Task<Dictionary<TKey, UsageTally>> TallyAsync<TKey>(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string groupBy, (long Since, long Until) range, bool withReasons,
        CancellationToken cancellationToken)
        where TKey : notnull
    {
        var tallies = new Dictionary<TKey, UsageTally>();
        // The percentiles rank the admitted requests' waits within each group: the nearest rank of p among n
        // sorted values is ⌈p·n/100⌉, in integer arithmetic as in the SQLite store.
        await using (var command = Bind(Command(connection, $"""
            WITH ranged AS (
                SELECT {groupBy} AS name, outcome, waited_ms, tokens_in, tokens_out
                FROM request_log
                WHERE at >= @since AND at < @until
            ),
            ranked AS (
                SELECT name, waited_ms,
                       row_number() OVER (PARTITION BY name ORDER BY waited_ms) AS rank,
                       count(*) OVER (PARTITION BY name) AS admitted
                FROM ranged
                WHERE outcome <> 'refused'
            ),
            percentiles AS (
                SELECT name,
                       max(waited_ms) FILTER (WHERE rank = (50 * admitted + 99) / 100) AS p50,
                       max(waited_ms) FILTER (WHERE rank = (95 * admitted + 99) / 100) AS p95
                FROM ranked
                GROUP BY name
            ),
            counts AS (
                SELECT name,
                       count(*) FILTER (WHERE outcome <> 'refused') AS requests,
                       count(*) FILTER (WHERE outcome = 'completed') AS completed,
                       count(*) FILTER (WHERE outcome = 'failed') AS failed,
                       count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
                       count(*) FILTER (WHERE outcome = 'refused') AS refused,
                       coalesce(sum(tokens_in) FILTER (WHERE outcome <> 'refused'), 0)::bigint AS tokens_in,
                       coalesce(sum(tokens_out) FILTER (WHERE outcome <> 'refused'), 0)::bigint AS tokens_out
                FROM ranged
                GROUP BY name
            )
            SELECT c.name, c.requests, c.completed, c.failed, c.cancelled, c.timed_out, c.refused, c.tokens_in, c.tokens_out,
                   coalesce(p.p50, 0), coalesce(p.p95, 0)
            FROM counts c LEFT JOIN percentiles p ON p.name = c.name;
            """, transaction), range))
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                tallies[reader.GetFieldValue<TKey>(0)] = new UsageTally
                {
                    Requests = reader.GetInt64(1),
                    Completed = reader.GetInt64(2),
                    Failed = reader.GetInt64(3),
                    Cancelled = reader.GetInt64(4),
                    TimedOut = reader.GetInt64(5),
                    Refused = reader.GetInt64(6),
                    TokensIn = reader.GetInt64(7),
                    TokensOut = reader.GetInt64(8),
                    WaitP50Ms = reader.GetInt64(9),
                    WaitP95Ms = reader.GetInt64(10),
                };
            }
        }

        if (withReasons)
        {
            await using var command = Bind(Command(connection, $"""
                SELECT {groupBy} AS name, coalesce(reason, 'refused') AS why, count(*)
                FROM request_log
                WHERE at >= @since AND at < @until AND outcome = 'refused'
                GROUP BY name, why;
                """, transaction), range);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                tallies[reader.GetFieldValue<TKey>(0)].RefusedByReason[reader.GetString(1)] = reader.GetInt64(2);
            }
        }

        return tallies;
    }

    private static NpgsqlCommand Bind(NpgsqlCommand command, (long Since, long Until) range) =>
        command.With("since", range.Since).With("until", range.Until);

    /// <summary>One group's figures as the database computed them.</summary>
    private sealed class UsageTally
    {
        public long Requests { get; init; }
        public long Completed { get; init; }
        public long Failed { get; init; }
        public long Cancelled { get; init; }
        public long TimedOut { get; init; }
        public long Refused { get; init; }
        public long TokensIn { get; init; }
        public long TokensOut { get; init; }
        public Dictionary<string, long> RefusedByReason { get; } = new(StringComparer.Ordinal);
        public long WaitP50Ms { get; init; }
        public long WaitP95Ms { get; init; }

        public UsageRow ToUsageRow(string name) => new(
            name, Requests, Completed, Failed, Cancelled, TimedOut, Refused, RefusedByReason, TokensIn, TokensOut, WaitP50Ms, WaitP95Ms);
    }
}
