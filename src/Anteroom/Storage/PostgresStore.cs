using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Anteroom.Storage;

/// <summary>
/// Keys, signed-out sessions, conversations and the request log in PostgreSQL, shared by every gateway pointed at
/// the same database. Like <see cref="SqliteStore"/>, nothing is cached here and every operation takes a pooled
/// connection of its own, so a change made through another gateway is seen by the next call.
/// </summary>
internal sealed partial class PostgresStore : IStore
{
    /// <summary>The setting that holds the connection string, named in every error an operator sees.</summary>
    public const string Setting = "Anteroom:Storage:Postgres";

    private readonly NpgsqlDataSource _dataSource;

    private PostgresStore(NpgsqlDataSource dataSource, TimeProvider time, ILogger log)
    {
        _dataSource = dataSource;
        _requestLog = new RequestLogQueue(WriteBatchAsync, stopped: null, time, log);
    }

    /// <summary>
    /// Connects to the database named by <paramref name="connectionString"/> and brings its schema up to date.
    /// Throws <see cref="StorageStartException"/>, with a one-line message naming <see cref="Setting"/>, when it
    /// cannot be reached or was written by a newer Anteroom.
    /// </summary>
    public static async Task<PostgresStore> OpenAsync(
        string connectionString, TimeProvider time, ILogger? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        ArgumentNullException.ThrowIfNull(time);

        NpgsqlDataSource dataSource;
        try
        {
            dataSource = NpgsqlDataSource.Create(connectionString);
        }
        catch (ArgumentException exception)
        {
            throw new StorageStartException($"{Setting} is not a valid PostgreSQL connection string: {exception.Message}", exception);
        }

        string where = $"{Describe(dataSource.ConnectionString)} ({Setting})";
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await PostgresMigrations.ApplyAsync(connection, where, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw new StorageStartException($"The PostgreSQL database {where} cannot be used: {OneLine(exception.Message)}", exception);
        }
        catch
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new PostgresStore(dataSource, time, log ?? NullLogger.Instance);
    }

    /// <summary>Writes every request recorded so far, stops the writer and closes the pooled connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _requestLog.DisposeAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Where the database is, for messages: host, port and database, never the password.</summary>
    private static string Describe(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"'{builder.Database ?? builder.Username}' at {builder.Host}:{builder.Port}";
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    private NpgsqlCommand Command(string sql) => _dataSource.CreateCommand(sql);

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, NpgsqlTransaction? transaction = null) =>
        new(sql, connection, transaction);

    private static long ToUnixMs(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private static long? ToUnixMs(DateTimeOffset? at) => at?.ToUnixTimeMilliseconds();

    private static DateTimeOffset FromUnixMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static DateTimeOffset? FromUnixMs(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : FromUnixMs(reader.GetInt64(ordinal));

    private static string? GetNullableString(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}

/// <summary>Parameter binding for Npgsql that maps null to SQL NULL.</summary>
internal static class NpgsqlCommandExtensions
{
    public static NpgsqlCommand With<T>(this NpgsqlCommand command, string name, T value)
    {
        // Typed by T, so a null still tells PostgreSQL its type: an untyped NULL cannot be compared with a column.
        command.Parameters.Add(new NpgsqlParameter<T>(name, value));
        return command;
    }
}
