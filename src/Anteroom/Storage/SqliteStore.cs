using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace Anteroom.Storage;

/// <summary>
/// Keys, signed-out sessions, conversations and the request log in one SQLite file. Every operation opens its own connection (the
/// provider pools them), so nothing is cached: a key revoked by another process, such as the <c>anteroom keys</c>
/// command, is seen by the next lookup here.
/// </summary>
internal sealed partial class SqliteStore : IStore
{
    // How long a statement waits for another connection's (or process's) write lock before giving up.
    private const int BusyTimeoutMs = 10_000;

    private readonly string _connectionString;

    private SqliteStore(string connectionString, TimeProvider time, ILogger log)
    {
        _connectionString = connectionString;
        _requestLog = new RequestLogQueue(WriteBatch, StopWriting, time, log);
    }

    /// <summary>
    /// Opens (creating if needed, with its directory) the database at <paramref name="databasePath"/> and brings
    /// its schema up to date. Throws when the file was written by a newer Anteroom.
    /// </summary>
    public static SqliteStore Open(string databasePath, TimeProvider time, ILogger? log = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        ArgumentNullException.ThrowIfNull(time);

        string fullPath = Path.GetFullPath(databasePath);
        Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
        string connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
        }.ToString();

        using var connection = Connect(connectionString);
        try
        {
            // WAL lets readers proceed while the request log writes; the mode is stored in the file, so once is enough.
            Execute(connection, "PRAGMA journal_mode = WAL;");
            SqliteMigrations.Apply(connection, fullPath);
        }
        catch
        {
            // Do not leave a pooled handle holding a file this process refused to use.
            SqliteConnection.ClearPool(connection);
            throw;
        }

        return new SqliteStore(connectionString, time, log ?? NullLogger.Instance);
    }

    /// <summary>Writes every request recorded so far, stops the writer and closes the pooled connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _requestLog.DisposeAsync().ConfigureAwait(false);
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private SqliteConnection Connect() => Connect(_connectionString);

    private static SqliteConnection Connect(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            // Per connection: these settings are not stored in the file. NORMAL is durable across process
            // crashes in WAL mode; only a power loss can take the last commits.
            Execute(connection, $"PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = {BusyTimeoutMs};");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        return command;
    }

    private static long ToUnixMs(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private static long? ToUnixMs(DateTimeOffset? at) => at?.ToUnixTimeMilliseconds();

    private static DateTimeOffset FromUnixMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static DateTimeOffset? FromUnixMs(SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : FromUnixMs(reader.GetInt64(ordinal));

    private static string? GetNullableString(SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}

/// <summary>Parameter binding that maps null to SQL NULL.</summary>
internal static class SqliteCommandExtensions
{
    public static SqliteCommand With(this SqliteCommand command, string name, object? value)
    {
        command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }
}
