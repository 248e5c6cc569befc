using System.Threading.Channels;
using Anteroom.Configuration;
using Anteroom.Gateway;
using Anteroom.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Storage;

/// <summary>Anteroom:Conversations:RetainDays: the hourly sweep that deletes conversations nobody has touched for that long.</summary>
public sealed class ConversationRetentionTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2026, 2, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("anteroom-retention-").FullName;
    private readonly FakeTimeProvider _time = new(T0);
    private SqliteStore _store = null!;
    private SweepSignals _sweeps = null!;

    public Task InitializeAsync()
    {
        _store = SqliteStore.Open(Path.Combine(_directory, "anteroom.db"), _time);
        _sweeps = new SweepSignals(_store);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private ConversationRetention Sweeper(int? retainDays) => new(
        _sweeps,
        Options.Create(new AnteroomOptions { Conversations = new ConversationOptions { RetainDays = retainDays } }),
        _time,
        NullLogger<ConversationRetention>.Instance);

    /// <summary>The owner's conversation ids, comma-separated, so results compare by value.</summary>
    private async Task<string> IdsAsync(string owner) => string.Join(",", (await _store.ListConversationsAsync(owner)).Select(c => c.Id));

    [Fact]
    public async Task WithRetainDays_ConversationsUnchangedThatLong_GoAtStart_AndOthersOnTheHourlySweepOnceTheyAgePastIt()
    {
        var ct = ConversationHttp.Within30Seconds();
        await _store.CreateConversationAsync("alice", "stale", "Untouched for 31 days", T0.AddDays(-31));
        await _store.CreateConversationAsync("alice", "aging", "Untouched for 29 days", T0.AddDays(-29));
        await _store.CreateConversationAsync("bob", "talked", "Created long ago, talked in yesterday", T0.AddDays(-90));
        Assert.True(await _store.AppendMessageAsync("bob", "talked", new NewMessage("user", "hi", T0.AddDays(-1), null, null, null)));
        using var sweeper = Sweeper(retainDays: 30);

        await sweeper.StartAsync(ct);
        int atStart = await _sweeps.NextAsync(ct);
        var afterStart = (await IdsAsync("alice"), await IdsAsync("bob"));
        _time.Advance(TimeSpan.FromDays(1) + ConversationRetention.Interval);
        int afterADay = await _sweeps.NextAsync(ct);
        var afterDay = (await IdsAsync("alice"), await IdsAsync("bob"));
        await sweeper.StopAsync(ct);

        Assert.Equal(1, atStart);
        Assert.Equal(("aging", "talked"), afterStart);
        Assert.Equal(1, afterADay);
        Assert.Equal(("", "talked"), afterDay);
    }

    [Fact]
    public async Task WithoutRetainDays_NothingIsEverSwept()
    {
        var ct = ConversationHttp.Within30Seconds();
        await _store.CreateConversationAsync("alice", "ancient", "Ten years old", T0.AddYears(-10));
        using var sweeper = Sweeper(retainDays: null);

        await sweeper.StartAsync(ct);
        await sweeper.ExecuteTask!.WaitAsync(ct);
        _time.Advance(TimeSpan.FromDays(400));

        Assert.Equal(0, _sweeps.Count);
        Assert.Equal("ancient", await IdsAsync("alice"));
    }

    /// <summary>The store, telling the test each time a sweep has finished and how many it deleted.</summary>
    private sealed class SweepSignals(IConversationStore inner) : IConversationStore
    {
        private readonly Channel<int> _done = Channel.CreateUnbounded<int>();

        public int Count { get; private set; }

        public async Task<int> NextAsync(CancellationToken cancellationToken) => await _done.Reader.ReadAsync(cancellationToken);

        public async Task<int> ForgetConversationsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
        {
            int forgotten = await inner.ForgetConversationsBeforeAsync(cutoff, cancellationToken);
            Count++;
            _done.Writer.TryWrite(forgotten);
            return forgotten;
        }

        public Task<Conversation> CreateConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default) =>
            inner.CreateConversationAsync(owner, id, title, at, cancellationToken);
        public Task<IReadOnlyList<Conversation>> ListConversationsAsync(string owner, CancellationToken cancellationToken = default) =>
            inner.ListConversationsAsync(owner, cancellationToken);
        public Task<Conversation?> FindConversationAsync(string owner, string id, CancellationToken cancellationToken = default) =>
            inner.FindConversationAsync(owner, id, cancellationToken);
        public Task<IReadOnlyList<ConversationMessage>?> ReadMessagesAsync(string owner, string id, int? last = null, CancellationToken cancellationToken = default) =>
            inner.ReadMessagesAsync(owner, id, last, cancellationToken);
        public Task<Conversation?> RenameConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default) =>
            inner.RenameConversationAsync(owner, id, title, at, cancellationToken);
        public Task<bool> DeleteConversationAsync(string owner, string id, CancellationToken cancellationToken = default) =>
            inner.DeleteConversationAsync(owner, id, cancellationToken);
        public Task<bool> AppendMessageAsync(string owner, string id, NewMessage message, CancellationToken cancellationToken = default) =>
            inner.AppendMessageAsync(owner, id, message, cancellationToken);
    }
}
