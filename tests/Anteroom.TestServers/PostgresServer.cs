using System.Globalization;
using Npgsql;

namespace Anteroom.TestServers;

/// <summary>
/// A real PostgreSQL server on a free loopback port, its cluster made by <c>initdb</c> in a temporary directory
/// (trust authentication on loopback only, no durability: it is thrown away); stopped and the directory removed when
/// disposed. As root it runs as the <c>postgres</c> user (or <c>nobody</c>), because PostgreSQL refuses root.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>The superuser the cluster is made with.</summary>
    public const string User = "anteroom";

    private readonly string _directory;
    private readonly ServerProcess _process;
    private int _databases;

    private PostgresServer(string directory, int port, ServerProcess process)
    {
        _directory = directory;
        Port = port;
        _process = process;
    }

    /// <summary>The port it listens on, on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>An Npgsql connection string for the database <c>postgres</c>.</summary>
    public string ConnectionString => ConnectionStringFor("postgres");

    /// <summary>Starts one and completes once it accepts connections.</summary>
    public static async Task<PostgresServer> StartAsync()
    {
        const string Hint = "apt-get install postgresql";
        string postgres = ServerProcess.Find("postgres", Hint, "/usr/lib/postgresql/*/bin/postgres");
        string initdb = ServerProcess.Find("initdb", Hint, Path.Combine(Path.GetDirectoryName(postgres)!, "initdb"), "/usr/lib/postgresql/*/bin/initdb");
        string? runAs = ServerProcess.UnprivilegedUser();

        string directory = Directory.CreateTempSubdirectory("anteroom-postgres-").FullName;
        string data = Path.Combine(directory, "data");
        Directory.CreateDirectory(data);
        await ServerProcess.GiveAsync(directory, runAs);
        if (runAs is not null && !OperatingSystem.IsWindows())
        {
            // The temporary directory's parent must let that user through to its own directory.
            File.SetUnixFileMode(directory, (UnixFileMode)0b111_101_101);
        }

        await ServerProcess.RunAsync(initdb, ["-D", data, "-U", User, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"], runAs);
        int port = ServerProcess.FreePort();
        var process = await ServerProcess.StartAsync(
            postgres,
            ["-D", data, "-p", port.ToString(CultureInfo.InvariantCulture), "-k", directory, "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
            readyLine: "database system is ready to accept connections",
            runAs);
        return new PostgresServer(directory, port, process);
    }

    /// <summary>An Npgsql connection string for <paramref name="database"/> on this server.</summary>
    public string ConnectionStringFor(string database) =>
        $"Host=127.0.0.1;Port={Port};Username={User};Database={database};Pooling=true;Include Error Detail=true";

    /// <summary>Creates a new, empty database and returns a connection string for it: one per test that needs a clean slate.</summary>
    public async Task<string> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        string name = $"test_{Interlocked.Increment(ref _databases)}";
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await create.ExecuteNonQueryAsync(cancellationToken);
        return ConnectionStringFor(name);
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
