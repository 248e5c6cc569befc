using Anteroom.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using static Anteroom.Tests.Storage.StoreSamples;

namespace Anteroom.Tests.Storage;

/// <summary>What only the SQLite store has: its file and its schema versions. What every store does is in <see cref="StoreContractTests"/>.</summary>
public sealed class SqliteStoreTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 10, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "anteroom-store-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(T0);

    private string DatabasePath => Path.Combine(_directory, "nested", "anteroom.db");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private SqliteStore Open() => SqliteStore.Open(DatabasePath, _time);

    // A connection outside the store, unpooled so it holds no handle after the test.
    private SqliteConnection RawConnection()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    private object? Scalar(string sql)
    {
        using var connection = RawConnection();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    // --- schema ---

    [Fact]
    public async Task Open_CreatesTheDirectoryAndSchema_AndDataSurvivesCloseAndReopen()
    {
        await using (var store = Open())
        {
            await store.AddKeyAsync(Key("k1", T0));
            await store.CreateConversationAsync("alice", "c1", "First", T0);
            Assert.True(await store.AppendMessageAsync("alice", "c1", Message("hello", T0.AddSeconds(1))));
            store.Record(Entry("alice", "free", T0, waitedMs: 5));
        }

        Assert.True(File.Exists(DatabasePath));
        Assert.Equal((long)SqliteMigrations.LatestVersion, Scalar("PRAGMA user_version;"));
        Assert.Equal("wal", Scalar("PRAGMA journal_mode;"));
        Assert.Equal(4L, Scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('api_keys', 'conversations', 'messages', 'request_log');"));

        await using (var reopened = Open())
        {
            Assert.Equal(Key("k1", T0), reopened.FindKey("k1"), StoredKeyComparer.Instance);
            var conversation = await reopened.FindConversationAsync("alice", "c1");
            Assert.Equal(new Conversation("c1", "alice", "First", T0, T0.AddSeconds(1), 1), conversation);
            var messages = await reopened.ReadMessagesAsync("alice", "c1");
            Assert.Equal([new ConversationMessage(1, "user", "hello", T0.AddSeconds(1), "req-hello", null, null)], messages!);
            var requests = await reopened.ReadRequestsAsync(T0, T0.AddHours(1), null, 10);
            Assert.Equal(5, Assert.Single(requests).WaitedMs);
        }

        Assert.Equal((long)SqliteMigrations.LatestVersion, Scalar("PRAGMA user_version;"));
    }

    [Fact]
    public async Task Open_ADatabaseFromANewerAnteroom_FailsWithAClearMessage()
    {
        await using (Open())
        {
        }

        Scalar("PRAGMA user_version = 99;");

        var error = Assert.Throws<InvalidOperationException>(() => Open());
        Assert.Contains("schema version 99", error.Message);
        Assert.Contains("newer Anteroom", error.Message);
        Assert.Contains(DatabasePath, error.Message);
    }
}
