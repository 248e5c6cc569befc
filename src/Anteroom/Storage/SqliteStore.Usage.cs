using Microsoft.Data.Sqlite;

namespace Anteroom.Storage;

internal sealed partial class SqliteStore
{
    private const long MsPerHour = 3_600_000;

    // What a summary groups by. Only these constants are ever spliced into SQL.
    private const string ByOwner = "owner";
    private const string ByTier = "tier";
    private const string ByHour = "at / 3600000";

    // Synchronous inside: Microsoft.Data.Sqlite does its I/O synchronously even behind its async methods, so
    // awaiting them row by row would only add overhead to the long wait-ordered scans.
    public Task<UsageReport> SummarizeAsync(DateTimeOffset since, DateTimeOffset until, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var range = new UsageRange(ToUnixMs(since), ToUnixMs(until), cancellationToken);
        using var connection = Connect();
        // One read transaction: every query sees the same snapshot, so the counts and the waits agree even while
        // the writer keeps adding entries.
        using var transaction = connection.BeginTransaction(deferred: true);
        var users = Tally<string>(connection, transaction, ByOwner, range, withReasons: true);
        var tiers = Tally<string>(connection, transaction, ByTier, range, withReasons: true);
        var hours = Tally<long>(connection, transaction, ByHour, range, withReasons: false);
        return Task.FromResult(new UsageReport(since, until, ToUsageRows(users), ToUsageRows(tiers), ToWaitHours(hours)));
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

    /// <summary>Counts, refusal reasons and wait percentiles of the range, per value of <paramref name="groupBy"/>.</summary>
    private static Dictionary<TKey, UsageTally> Tally<TKey>(
        SqliteConnection connection, SqliteTransaction transaction, string groupBy, UsageRange range, bool withReasons)
        where TKey : notnull
    {
        var tallies = CountOutcomes<TKey>(connection, transaction, groupBy, range);
        if (withReasons)
        {
            CountRefusalReasons(connection, transaction, groupBy, range, tallies);
        }

        FindWaitPercentiles(connection, transaction, groupBy, range, tallies);
        return tallies;
    }

    private static Dictionary<TKey, UsageTally> CountOutcomes<TKey>(
        SqliteConnection connection, SqliteTransaction transaction, string groupBy, UsageRange range)
        where TKey : notnull
    {
        using var command = range.Bind(Command(connection, $"""
            SELECT {groupBy} AS name,
                   sum(outcome <> 'refused'),
                   sum(outcome = 'completed'),
                   sum(outcome = 'failed'),
                   sum(outcome = 'cancelled'),
                   sum(outcome = 'timed_out'),
                   sum(outcome = 'refused'),
                   sum(CASE WHEN outcome <> 'refused' THEN tokens_in ELSE 0 END),
                   sum(CASE WHEN outcome <> 'refused' THEN tokens_out ELSE 0 END)
            FROM request_log
            WHERE at >= @since AND at < @until
            GROUP BY name;
            """, transaction));
        using var reader = command.ExecuteReader();
        var tallies = new Dictionary<TKey, UsageTally>();
        while (reader.Read())
        {
            range.CancellationToken.ThrowIfCancellationRequested();
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
            };
        }

        return tallies;
    }

    private static void CountRefusalReasons<TKey>(
        SqliteConnection connection, SqliteTransaction transaction, string groupBy, UsageRange range, Dictionary<TKey, UsageTally> tallies)
        where TKey : notnull
    {
        using var command = range.Bind(Command(connection, $"""
            SELECT {groupBy} AS name, coalesce(reason, 'refused') AS why, count(*)
            FROM request_log
            WHERE at >= @since AND at < @until AND outcome = 'refused'
            GROUP BY name, why;
            """, transaction));
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            tallies[reader.GetFieldValue<TKey>(0)].RefusedByReason[reader.GetString(1)] = reader.GetInt64(2);
        }
    }

    /// <summary>
    /// Nearest-rank percentiles of the admitted requests' waits. The waits arrive sorted within each group and the
    /// group's size is already counted, so each percentile is simply the wait at its rank: nothing is buffered.
    /// </summary>
    private static void FindWaitPercentiles<TKey>(
        SqliteConnection connection, SqliteTransaction transaction, string groupBy, UsageRange range, Dictionary<TKey, UsageTally> tallies)
        where TKey : notnull
    {
        using var command = range.Bind(Command(connection, $"""
            SELECT {groupBy} AS name, waited_ms
            FROM request_log
            WHERE at >= @since AND at < @until AND outcome <> 'refused'
            ORDER BY name, waited_ms;
            """, transaction));
        using var reader = command.ExecuteReader();
        UsageTally? tally = null;
        TKey? name = default;
        long rank = 0;
        while (reader.Read())
        {
            var rowName = reader.GetFieldValue<TKey>(0);
            if (tally is null || !EqualityComparer<TKey>.Default.Equals(rowName, name))
            {
                range.CancellationToken.ThrowIfCancellationRequested();
                (tally, name, rank) = (tallies[rowName], rowName, 0);
            }

            rank++;
            long waited = reader.GetInt64(1);
            if (rank == NearestRank(50, tally.Requests))
            {
                tally.WaitP50Ms = waited;
            }

            if (rank == NearestRank(95, tally.Requests))
            {
                tally.WaitP95Ms = waited;
            }
        }
    }

    /// <summary>The 1-based rank of the <paramref name="percent"/>th percentile of <paramref name="count"/> sorted values: ⌈percent·count/100⌉.</summary>
    private static long NearestRank(int percent, long count) => (percent * count + 99) / 100;

    /// <summary>The half-open range [since, until) in unix milliseconds, bound into every summary query.</summary>
    private readonly record struct UsageRange(long Since, long Until, CancellationToken CancellationToken)
    {
        public SqliteCommand Bind(SqliteCommand command) => command.With("@since", Since).With("@until", Until);
    }

    /// <summary>One group's figures while a summary is being built.</summary>
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
        public long WaitP50Ms { get; set; }
        public long WaitP95Ms { get; set; }

        public UsageRow ToUsageRow(string name) => new(
            name, Requests, Completed, Failed, Cancelled, TimedOut, Refused, RefusedByReason, TokensIn, TokensOut, WaitP50Ms, WaitP95Ms);
    }
}
