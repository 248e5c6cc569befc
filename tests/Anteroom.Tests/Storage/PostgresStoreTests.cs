using System.Net;
using System.Net.Sockets;
using Anteroom.Storage;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Anteroom.Tests.Storage;

/// <summary>What only the PostgreSQL store has: versioned migrations shared by gateways starting together, and its start-up errors.</summary>
public sealed class PostgresStoreTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private readonly FakeTimeProvider _time = new();

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task StoresOpenedTogetherOnAnEmptyDatabase_AllSucceed_AndEachMigrationIsAppliedOnce()
    {
        string database = await postgres.Server.CreateDatabaseAsync();

        // Without the lock, the second CREATE TABLE of the same script fails and that store's start with it.
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => PostgresStore.OpenAsync(database, _time))));
        try
        {
            await stores[0].AddKeyAsync(new StoredKey("k1", "alice", "default", [1], [2], _time.GetUtcNow(), null, null, false, false));
            Assert.Equal("alice", stores[3].FindKey("k1")!.User);
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }

        Assert.Equal((long)PostgresMigrations.LatestVersion, await ScalarAsync<long>(database, "SELECT count(*) FROM schema_migrations;"));
        Assert.Equal(PostgresMigrations.LatestVersion, await ScalarAsync<int>(database, "SELECT max(version) FROM schema_migrations;"));
    }

    [Fact]
    public async Task ADatabaseAtANewerSchemaVersion_IsRefusedWithAClearMessage_AndLeftAsItWas()
    {
        string database = await postgres.Server.CreateDatabaseAsync();
        await (await PostgresStore.OpenAsync(database, _time)).DisposeAsync();
        int future = PostgresMigrations.LatestVersion + 1;
        await ScalarAsync<int>(database, $"INSERT INTO schema_migrations (version) VALUES ({future}) RETURNING version;");

        var error = await Assert.ThrowsAsync<StorageStartException>(() => PostgresStore.OpenAsync(database, _time));

        Assert.Contains($"schema version {future}", error.Message);
        Assert.Contains("newer Anteroom", error.Message);
        Assert.Contains($"up to {PostgresMigrations.LatestVersion}", error.Message);
        Assert.Equal((long)future, await ScalarAsync<long>(database, "SELECT count(*) FROM schema_migrations;"));
    }

    [Fact]
    public async Task AnUnreachableServer_IsReportedOnOneLine_NamingTheSettingAndTheAddress_ButNotThePassword()
    {
        int closedPort = ClosedPort();
        string connectionString = $"Host=127.0.0.1;Port={closedPort};Username=anteroom;Password=s3cret-pass;Database=gone;Timeout=5";

        var error = await Assert.ThrowsAsync<StorageStartException>(() => PostgresStore.OpenAsync(connectionString, _time));

        Assert.Contains("Anteroom:Storage:Postgres", error.Message);
        Assert.Contains($"'gone' at 127.0.0.1:{closedPort}", error.Message);
        Assert.DoesNotContain("s3cret-pass", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    /// <summary>A loopback port nothing listens on: one just bound and released.</summary>
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
