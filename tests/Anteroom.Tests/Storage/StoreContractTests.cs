using Anteroom.Storage;
using Anteroom.TestServers;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using static Anteroom.Tests.Storage.StoreSamples;

namespace Anteroom.Tests.Storage;

/// <summary>
/// What every store must do, written against its interfaces alone (<see cref="IKeyStore"/>,
/// <see cref="ISessionStore"/>, <see cref="IConversationStore"/>, <see cref="IRequestLog"/>): each implementation
/// derives a class that says how to open one on a database of the test's own, and how to open it again.
/// </summary>
public abstract class StoreContractTests
{
    private protected static readonly DateTimeOffset T0 = new(2025, 3, 1, 10, 0, 0, TimeSpan.Zero);

    private protected FakeTimeProvider Time { get; } = new(T0);

    /// <summary>Opens the store on this test's database: empty the first time, the same data every later time.</summary>
    private protected abstract Task<StoreUnderTest> OpenAsync();

    /// <summary>The rows in one of the store's tables, read beside the store: for what the interfaces cannot show.</summary>
    private protected abstract Task<long> CountRowsAsync(string table);

    // --- keys ---

    [Fact]
    public async Task Keys_AddFindListRevoke()
    {
        await using var store = await OpenAsync();
        var later = Key("later", T0.AddMinutes(5), user: "bob") with { Admin = true, CanActForUsers = false, ExpiresAt = null };
        var earlier = Key("earlier", T0);
        await store.AddKeyAsync(later);
        await store.AddKeyAsync(earlier);

        Assert.Equal(later, store.FindKey("later"), StoredKeyComparer.Instance);
        Assert.Null(store.FindKey("missing"));
        Assert.Equal(["earlier", "later"], (await store.ListKeysAsync()).Select(k => k.Id));

        Assert.True(await store.RevokeKeyAsync("earlier", T0.AddHours(1)));
        Assert.Equal(T0.AddHours(1), store.FindKey("earlier")!.RevokedAt);
        Assert.False(await store.RevokeKeyAsync("earlier", T0.AddHours(2)));
        Assert.Equal(T0.AddHours(1), store.FindKey("earlier")!.RevokedAt);
        Assert.False(await store.RevokeKeyAsync("missing", T0));
        Assert.Null(store.FindKey("later")!.RevokedAt);
    }

    [Fact]
    public async Task AddKey_WithAnIdInUse_Throws()
    {
        await using var store = await OpenAsync();
        await store.AddKeyAsync(Key("k1", T0));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.AddKeyAsync(Key("k1", T0.AddDays(1), user: "bob")));
        Assert.Contains("'k1' already exists", error.Message);
        Assert.Equal("alice", store.FindKey("k1")!.User);
    }

    [Fact]
    public async Task RevokeKey_ByAnotherStoreOnTheSameDatabase_IsSeenByTheNextFindKey()
    {
        await using var server = await OpenAsync();
        await server.AddKeyAsync(Key("k1", T0));
        Assert.Null(server.FindKey("k1")!.RevokedAt);

        await using (var cli = await OpenAsync())
        {
            Assert.True(await cli.RevokeKeyAsync("k1", T0.AddMinutes(1)));
        }

        Assert.Equal(T0.AddMinutes(1), server.FindKey("k1")!.RevokedAt);
    }

    // --- sessions ---

    [Fact]
    public async Task RevokedSessions_AreSeenByEveryStoreOnTheDatabase_AndExpiredOnesAreDroppedAsNewOnesArrive()
    {
        await using var store = await OpenAsync();
        await using var other = await OpenAsync();

        Assert.False(store.IsSessionRevoked("s1"));
        await store.RevokeSessionAsync("s1", T0, expiresAt: T0.AddHours(1));
        await store.RevokeSessionAsync("s1", T0.AddMinutes(1), expiresAt: T0.AddHours(1)); // again: no error
        await store.RevokeSessionAsync("s2", T0, expiresAt: T0.AddHours(3));
        bool seenByOther = other.IsSessionRevoked("s1");
        await other.RevokeSessionAsync("s3", T0.AddHours(2), expiresAt: T0.AddHours(4));

        Assert.True(seenByOther);
        Assert.False(store.IsSessionRevoked("s1")); // its cookie expired before s3 was revoked
        Assert.True(store.IsSessionRevoked("s2"));
        Assert.True(store.IsSessionRevoked("s3"));
        Assert.False(store.IsSessionRevoked("never"));
    }

    // --- conversations ---

    [Fact]
    public async Task Conversations_OfAnotherOwner_BehaveAsMissing_OnEveryMethod()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "c1", "Alice's", T0);
        Assert.True(await store.AppendMessageAsync("alice", "c1", Message("secret", T0.AddSeconds(1))));

        Assert.Empty(await store.ListConversationsAsync("bob"));
        Assert.Null(await store.FindConversationAsync("bob", "c1"));
        Assert.Null(await store.ReadMessagesAsync("bob", "c1"));
        Assert.Null(await store.ReadMessagesAsync("bob", "c1", last: 1));
        Assert.Null(await store.RenameConversationAsync("bob", "c1", "Mine now", T0.AddMinutes(1)));
        Assert.False(await store.AppendMessageAsync("bob", "c1", Message("intrusion", T0.AddMinutes(1))));
        Assert.False(await store.DeleteConversationAsync("bob", "c1"));

        // Not even a create collides: bob's "c1" is his own conversation.
        var bobs = await store.CreateConversationAsync("bob", "c1", "Bob's", T0.AddMinutes(2));
        Assert.Equal(new Conversation("c1", "bob", "Bob's", T0.AddMinutes(2), T0.AddMinutes(2), 0), bobs);
        Assert.Empty((await store.ReadMessagesAsync("bob", "c1"))!);

        var alices = await store.FindConversationAsync("alice", "c1");
        Assert.Equal(new Conversation("c1", "alice", "Alice's", T0, T0.AddSeconds(1), 1), alices);
        Assert.Equal(["secret"], (await store.ReadMessagesAsync("alice", "c1"))!.Select(m => m.Content));
        Assert.True(await store.DeleteConversationAsync("bob", "c1"));
        Assert.NotNull(await store.FindConversationAsync("alice", "c1"));
    }

    [Fact]
    public async Task Conversations_MissingIds_AnswerNullOrFalse()
    {
        await using var store = await OpenAsync();

        Assert.Null(await store.FindConversationAsync("alice", "nope"));
        Assert.Null(await store.ReadMessagesAsync("alice", "nope"));
        Assert.Null(await store.RenameConversationAsync("alice", "nope", "x", T0));
        Assert.False(await store.AppendMessageAsync("alice", "nope", Message("x", T0)));
        Assert.False(await store.DeleteConversationAsync("alice", "nope"));
    }

    [Fact]
    public async Task CreateConversation_WithAnIdTheOwnerAlreadyUses_Throws()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "c1", "First", T0);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.CreateConversationAsync("alice", "c1", "Again", T0));
        Assert.Contains("'c1' already exists", error.Message);
    }

    [Fact]
    public async Task ListConversations_NewestUpdateFirst_TiesById_WithMessageCounts()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "b", "B", T0);
        await store.CreateConversationAsync("alice", "a", "A", T0);
        await store.CreateConversationAsync("alice", "old", "Old", T0.AddMinutes(-5));
        await store.CreateConversationAsync("alice", "c", "C", T0.AddMinutes(1));
        Assert.True(await store.AppendMessageAsync("alice", "old", Message("one", T0.AddMinutes(2))));
        Assert.True(await store.AppendMessageAsync("alice", "old", Message("two", T0.AddMinutes(3), role: "assistant")));

        var list = await store.ListConversationsAsync("alice");

        Assert.Equal(["old", "c", "a", "b"], list.Select(c => c.Id));
        Assert.Equal([2, 0, 0, 0], list.Select(c => c.MessageCount));
        Assert.Equal(T0.AddMinutes(3), list[0].UpdatedAt);
    }

    [Fact]
    public async Task RenameConversation_ChangesTheTitleAndUpdateTime()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "c1", "First", T0);
        Assert.True(await store.AppendMessageAsync("alice", "c1", Message("hi", T0.AddSeconds(1))));

        var renamed = await store.RenameConversationAsync("alice", "c1", "Renamed", T0.AddMinutes(1));

        Assert.Equal(new Conversation("c1", "alice", "Renamed", T0, T0.AddMinutes(1), 1), renamed);
        Assert.Equal(renamed, await store.FindConversationAsync("alice", "c1"));
    }

    [Fact]
    public async Task ConcurrentAppends_FromTwoStores_GetDistinctConsecutiveSeqs()
    {
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();
        await first.CreateConversationAsync("alice", "c1", "Busy", T0);

        var appends = Enumerable.Range(1, 50).Select(i => Task.Run(() =>
            (i % 2 == 0 ? first : second).AppendMessageAsync("alice", "c1", Message($"m{i}", T0.AddSeconds(i)))));
        var results = await Task.WhenAll(appends);

        Assert.All(results, Assert.True);
        var messages = (await first.ReadMessagesAsync("alice", "c1"))!;
        Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), messages.Select(m => m.Seq));
        Assert.Equal(Enumerable.Range(1, 50).Select(i => $"m{i}").Order(), messages.Select(m => m.Content).Order());
        var conversation = await first.FindConversationAsync("alice", "c1");
        Assert.Equal(50, conversation!.MessageCount);
        Assert.Equal(T0.AddSeconds(50), conversation.UpdatedAt);
    }

    [Fact]
    public async Task ReadMessages_WithLast_ReturnsOnlyTheLastN_InOrder()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "c1", "Chat", T0);
        for (int i = 1; i <= 5; i++)
        {
            Assert.True(await store.AppendMessageAsync("alice", "c1", Message($"m{i}", T0.AddSeconds(i), i % 2 == 0 ? "assistant" : "user")));
        }

        var lastTwo = (await store.ReadMessagesAsync("alice", "c1", last: 2))!;
        Assert.Equal([4L, 5L], lastTwo.Select(m => m.Seq));
        Assert.Equal(new ConversationMessage(4, "assistant", "m4", T0.AddSeconds(4), "req-m4", "llama", "stop"), lastTwo[0]);
        Assert.Equal([1L, 2L, 3L, 4L, 5L], (await store.ReadMessagesAsync("alice", "c1", last: 10))!.Select(m => m.Seq));
        Assert.Equal([1L, 2L, 3L, 4L, 5L], (await store.ReadMessagesAsync("alice", "c1"))!.Select(m => m.Seq));
        Assert.Empty((await store.ReadMessagesAsync("alice", "c1", last: 0))!);
    }

    [Fact]
    public async Task DeleteConversation_RemovesItsMessages()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "c1", "Doomed", T0);
        await store.CreateConversationAsync("alice", "c2", "Kept", T0);
        Assert.True(await store.AppendMessageAsync("alice", "c1", Message("a", T0)));
        Assert.True(await store.AppendMessageAsync("alice", "c1", Message("b", T0)));
        Assert.True(await store.AppendMessageAsync("alice", "c2", Message("c", T0)));

        Assert.True(await store.DeleteConversationAsync("alice", "c1"));

        Assert.Null(await store.FindConversationAsync("alice", "c1"));
        Assert.False(await store.DeleteConversationAsync("alice", "c1"));
        Assert.Equal(1L, await CountRowsAsync("messages"));
        await store.CreateConversationAsync("alice", "c1", "Reborn", T0.AddMinutes(1));
        Assert.Empty((await store.ReadMessagesAsync("alice", "c1"))!);
        Assert.True(await store.AppendMessageAsync("alice", "c1", Message("fresh", T0.AddMinutes(2))));
        Assert.Equal(1L, Assert.Single((await store.ReadMessagesAsync("alice", "c1"))!).Seq);
    }

    [Fact]
    public async Task ForgetConversationsBefore_DeletesEveryOwnersConversationsNotUpdatedSince_WithTheirMessages()
    {
        await using var store = await OpenAsync();
        await store.CreateConversationAsync("alice", "old", "Old", T0.AddDays(-40));
        Assert.True(await store.AppendMessageAsync("alice", "old", Message("stale", T0.AddDays(-31))));
        await store.CreateConversationAsync("bob", "old", "Bob's old", T0.AddDays(-31));
        await store.CreateConversationAsync("alice", "revived", "Revived", T0.AddDays(-40));
        Assert.True(await store.AppendMessageAsync("alice", "revived", Message("again", T0.AddDays(-1))));
        await store.CreateConversationAsync("bob", "renamed", "Renamed", T0.AddDays(-40));
        Assert.NotNull(await store.RenameConversationAsync("bob", "renamed", "Still here", T0.AddDays(-2)));
        await store.CreateConversationAsync("carol", "edge", "Exactly at the cutoff", T0.AddDays(-30));

        int forgotten = await store.ForgetConversationsBeforeAsync(T0.AddDays(-30));

        Assert.Equal(2, forgotten);
        Assert.Equal(["revived"], (await store.ListConversationsAsync("alice")).Select(c => c.Id));
        Assert.Equal(["renamed"], (await store.ListConversationsAsync("bob")).Select(c => c.Id));
        Assert.Equal(["edge"], (await store.ListConversationsAsync("carol")).Select(c => c.Id));
        Assert.Equal(1L, await CountRowsAsync("messages"));
        Assert.Equal(0, await store.ForgetConversationsBeforeAsync(T0.AddDays(-30)));
    }

    // --- request log ---

    [Fact]
    public async Task RecordedEntries_SurviveDisposeAndReopen_WithoutAFlush()
    {
        const int count = 1_234; // more than one batch
        await using (var store = await OpenAsync())
        {
            for (int i = 0; i < count; i++)
            {
                store.Record(Entry("alice", "free", T0.AddMilliseconds(i), waitedMs: i));
            }
        }

        await using var reopened = await OpenAsync();
        var entries = await reopened.ReadRequestsAsync(T0, T0.AddHours(1), null, 10_000);
        Assert.Equal(count, entries.Count);
        Assert.Equal(Enumerable.Range(0, count).Reverse().Select(i => (long)i), entries.Select(e => e.WaitedMs));
        Assert.Equal(0, reopened.DroppedRequestLogEntries);
    }

    [Fact]
    public async Task ForgetRequestsBefore_DeletesOnlyOlderEntries_InSteps()
    {
        const int old = 12_345; // more than one deletion step
        await using var store = await OpenAsync();
        for (int i = 0; i < old; i++)
        {
            store.Record(Entry("alice", "free", T0.AddMilliseconds(i)));
        }

        var kept = Entry("alice", "free", T0.AddHours(1));
        store.Record(kept);
        await store.FlushAsync();

        Assert.Equal(old, await store.ForgetRequestsBeforeAsync(T0.AddHours(1)));
        Assert.Equal([kept], await store.ReadRequestsAsync(T0.AddDays(-1), T0.AddDays(1), null, 100_000));
        Assert.Equal(0, await store.ForgetRequestsBeforeAsync(T0.AddHours(1)));
    }

    [Fact]
    public async Task FlushAsync_MakesRecordedEntriesReadable_NewestFirst()
    {
        await using var store = await OpenAsync();
        var first = Entry("alice", "free", T0, waitedMs: 1, tokensIn: 3, tokensOut: 4);
        var second = Entry("bob", "pro", T0.AddSeconds(1), "refused", "queue_full");
        var third = Entry("alice", "free", T0.AddSeconds(2), "failed", "backend_error", waitedMs: 3);
        store.Record(first);
        store.Record(second);
        store.Record(third);
        store.Record(Entry("alice", "free", T0.AddHours(1))); // at the end of the range: excluded
        store.Record(Entry("alice", "free", T0.AddMilliseconds(-1))); // before it: excluded

        await store.FlushAsync();

        Assert.Equal([third, second, first], await store.ReadRequestsAsync(T0, T0.AddHours(1), null, 100));
        Assert.Equal([third, first], await store.ReadRequestsAsync(T0, T0.AddHours(1), "alice", 100));
        Assert.Equal([third], await store.ReadRequestsAsync(T0, T0.AddHours(1), "alice", 1));
        Assert.Empty(await store.ReadRequestsAsync(T0, T0.AddHours(1), "carol", 100));
    }

    [Fact]
    public async Task AfterDispose_RecordDropsQuietly_AndFlushCompletes()
    {
        var store = await OpenAsync();
        store.Record(Entry("alice", "free", T0));
        await store.DisposeAsync();

        store.Record(Entry("alice", "free", T0));
        await store.FlushAsync();

        Assert.Equal(1, store.DroppedRequestLogEntries);
        await using var reopened = await OpenAsync();
        Assert.Single(await reopened.ReadRequestsAsync(T0, T0.AddHours(1), null, 10));
    }

    [Fact]
    public async Task Summarize_CountsOutcomesRefusalsTokensAndWaitPercentiles_PerUserTierAndHour()
    {
        await using var store = await OpenAsync();
        var m = TimeSpan.FromMinutes(1);
        // alice (free): waits 10, 20, 30, 40 in hour 10 and 1000 in hour 11; two refusals; refused tokens do not count.
        store.Record(Entry("alice", "free", T0 + m, waitedMs: 10, tokensIn: 5, tokensOut: 7));
        store.Record(Entry("alice", "free", T0 + 2 * m, waitedMs: 20, tokensIn: 5, tokensOut: 7));
        store.Record(Entry("alice", "free", T0 + 3 * m, "failed", "backend_error", waitedMs: 30, tokensIn: 1));
        store.Record(Entry("alice", "free", T0 + 4 * m, "cancelled", waitedMs: 40, tokensIn: 2, tokensOut: 1));
        store.Record(Entry("alice", "free", T0.AddHours(1) + 5 * m, "timed_out", waitedMs: 1000));
        store.Record(Entry("alice", "free", T0 + 6 * m, "refused", "queue_full", tokensIn: 100, tokensOut: 100));
        store.Record(Entry("alice", "free", T0 + 7 * m, "refused"));
        // bob (pro): waits 100, 200; three rate-limit refusals.
        store.Record(Entry("bob", "pro", T0 + 8 * m, waitedMs: 200, tokensIn: 10, tokensOut: 20));
        store.Record(Entry("bob", "pro", T0 + 9 * m, waitedMs: 100, tokensIn: 10, tokensOut: 20));
        for (int i = 0; i < 3; i++)
        {
            store.Record(Entry("bob", "pro", T0 + (10 + i) * m, "refused", "rate_limited"));
        }

        // dave (free): waits 5, 4, 3, 2, 1; five entries like bob, so the tie is broken by name.
        for (int i = 5; i >= 1; i--)
        {
            store.Record(Entry("dave", "free", T0 + (20 + i) * m, waitedMs: i, tokensIn: 1, tokensOut: 1));
        }

        // carol (pro): one refusal, alone in hour 13; hour 12 has nothing.
        store.Record(Entry("carol", "pro", T0.AddHours(3.5), "refused", "rate_limited"));
        // Outside [since, until).
        store.Record(Entry("alice", "free", T0.AddMilliseconds(-1), waitedMs: 9999, tokensIn: 9999));
        store.Record(Entry("erin", "free", T0.AddHours(4), waitedMs: 9999));
        await store.FlushAsync();

        var report = await store.SummarizeAsync(T0, T0.AddHours(4));

        Assert.Equal((T0, T0.AddHours(4)), (report.Since, report.Until));
        Assert.Equal(["alice", "bob", "dave", "carol"], report.Users.Select(u => u.Name));
        AssertRow(report.Users[0], "alice", requests: 5, completed: 2, failed: 1, cancelled: 1, timedOut: 1, refused: 2,
            reasons: new() { ["queue_full"] = 1, ["refused"] = 1 }, tokensIn: 13, tokensOut: 15, p50: 30, p95: 1000);
        AssertRow(report.Users[1], "bob", requests: 2, completed: 2, failed: 0, cancelled: 0, timedOut: 0, refused: 3,
            reasons: new() { ["rate_limited"] = 3 }, tokensIn: 20, tokensOut: 40, p50: 100, p95: 200);
        AssertRow(report.Users[2], "dave", requests: 5, completed: 5, failed: 0, cancelled: 0, timedOut: 0, refused: 0,
            reasons: [], tokensIn: 5, tokensOut: 5, p50: 3, p95: 5);
        AssertRow(report.Users[3], "carol", requests: 0, completed: 0, failed: 0, cancelled: 0, timedOut: 0, refused: 1,
            reasons: new() { ["rate_limited"] = 1 }, tokensIn: 0, tokensOut: 0, p50: 0, p95: 0);

        // free: waits 1 2 3 4 5 10 20 30 40 1000 → ranks 5 and 10. pro: waits 100 200 → ranks 1 and 2.
        Assert.Equal(["free", "pro"], report.Tiers.Select(t => t.Name));
        AssertRow(report.Tiers[0], "free", requests: 10, completed: 7, failed: 1, cancelled: 1, timedOut: 1, refused: 2,
            reasons: new() { ["queue_full"] = 1, ["refused"] = 1 }, tokensIn: 18, tokensOut: 20, p50: 5, p95: 1000);
        AssertRow(report.Tiers[1], "pro", requests: 2, completed: 2, failed: 0, cancelled: 0, timedOut: 0, refused: 4,
            reasons: new() { ["rate_limited"] = 4 }, tokensIn: 20, tokensOut: 40, p50: 100, p95: 200);

        // Hour 10: waits 1 2 3 4 5 10 20 30 40 100 200 → ranks 6 and 11.
        Assert.Equal(
            [
                new WaitHour(T0, 11, 5, 10, 200),
                new WaitHour(T0.AddHours(1), 1, 0, 1000, 1000),
                new WaitHour(T0.AddHours(3), 0, 1, 0, 0),
            ],
            report.Hours);
    }

    [Fact]
    public async Task Summarize_AnEmptyRange_IsEmpty()
    {
        await using var store = await OpenAsync();

        var report = await store.SummarizeAsync(T0, T0.AddHours(1));

        Assert.Empty(report.Users);
        Assert.Empty(report.Tiers);
        Assert.Empty(report.Hours);
    }

    private static void AssertRow(
        UsageRow row, string name, long requests, long completed, long failed, long cancelled, long timedOut, long refused,
        Dictionary<string, long> reasons, long tokensIn, long tokensOut, long p50, long p95)
    {
        Assert.Equal(
            (name, requests, completed, failed, cancelled, timedOut, refused, tokensIn, tokensOut, p50, p95),
            (row.Name, row.Requests, row.Completed, row.Failed, row.Cancelled, row.TimedOut, row.Refused, row.TokensIn, row.TokensOut,
                row.WaitP50Ms, row.WaitP95Ms));
        Assert.Equal(reasons.OrderBy(r => r.Key), row.RefusedByReason.OrderBy(r => r.Key));
    }
}

/// <summary>Stored keys compared by value, their byte arrays included (records compare arrays by reference).</summary>
internal sealed class StoredKeyComparer : IEqualityComparer<StoredKey?>
{
    public static readonly StoredKeyComparer Instance = new();

    public bool Equals(StoredKey? x, StoredKey? y) =>
        x is not null && y is not null
        && x with { Salt = Array.Empty<byte>(), Hash = Array.Empty<byte>() } == y with { Salt = Array.Empty<byte>(), Hash = Array.Empty<byte>() }
        && x.Salt.SequenceEqual(y.Salt)
        && x.Hash.SequenceEqual(y.Hash);

    public int GetHashCode(StoredKey? key) => key?.Id.GetHashCode(StringComparison.Ordinal) ?? 0;
}

/// <summary>A store as the contract sees it: its interfaces, and the count of entries its request log dropped.</summary>
internal sealed class StoreUnderTest(object store, Func<long> dropped)
    : IKeyStore, ISessionStore, IConversationStore, IRequestLog, IAsyncDisposable
{
    private IKeyStore Keys => (IKeyStore)store;
    private ISessionStore Sessions => (ISessionStore)store;
    private IConversationStore Conversations => (IConversationStore)store;
    private IRequestLog Log => (IRequestLog)store;

    public long DroppedRequestLogEntries => dropped();

    public Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default) => Keys.AddKeyAsync(key, cancellationToken);
    public StoredKey? FindKey(string id) => Keys.FindKey(id);
    public Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default) => Keys.ListKeysAsync(cancellationToken);
    public Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default) => Keys.RevokeKeyAsync(id, at, cancellationToken);

    public Task RevokeSessionAsync(string id, DateTimeOffset at, DateTimeOffset expiresAt, CancellationToken cancellationToken = default) =>
        Sessions.RevokeSessionAsync(id, at, expiresAt, cancellationToken);
    public bool IsSessionRevoked(string id) => Sessions.IsSessionRevoked(id);

    public Task<Conversation> CreateConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        Conversations.CreateConversationAsync(owner, id, title, at, cancellationToken);
    public Task<IReadOnlyList<Conversation>> ListConversationsAsync(string owner, CancellationToken cancellationToken = default) =>
        Conversations.ListConversationsAsync(owner, cancellationToken);
    public Task<Conversation?> FindConversationAsync(string owner, string id, CancellationToken cancellationToken = default) =>
        Conversations.FindConversationAsync(owner, id, cancellationToken);
    public Task<IReadOnlyList<ConversationMessage>?> ReadMessagesAsync(string owner, string id, int? last = null, CancellationToken cancellationToken = default) =>
        Conversations.ReadMessagesAsync(owner, id, last, cancellationToken);
    public Task<Conversation?> RenameConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        Conversations.RenameConversationAsync(owner, id, title, at, cancellationToken);
    public Task<bool> DeleteConversationAsync(string owner, string id, CancellationToken cancellationToken = default) =>
        Conversations.DeleteConversationAsync(owner, id, cancellationToken);
    public Task<bool> AppendMessageAsync(string owner, string id, NewMessage message, CancellationToken cancellationToken = default) =>
        Conversations.AppendMessageAsync(owner, id, message, cancellationToken);
    public Task<int> ForgetConversationsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default) =>
        Conversations.ForgetConversationsBeforeAsync(cutoff, cancellationToken);

    public void Record(RequestLogEntry entry) => Log.Record(entry);
    public Task FlushAsync(CancellationToken cancellationToken = default) => Log.FlushAsync(cancellationToken);
    public Task<IReadOnlyList<RequestLogEntry>> ReadRequestsAsync(
        DateTimeOffset since, DateTimeOffset until, string? owner, int limit, CancellationToken cancellationToken = default) =>
        Log.ReadRequestsAsync(since, until, owner, limit, cancellationToken);
    public Task<UsageReport> SummarizeAsync(DateTimeOffset since, DateTimeOffset until, CancellationToken cancellationToken = default) =>
        Log.SummarizeAsync(since, until, cancellationToken);
    public Task<int> ForgetRequestsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default) =>
        Log.ForgetRequestsBeforeAsync(cutoff, cancellationToken);

    public ValueTask DisposeAsync() => ((IAsyncDisposable)store).DisposeAsync();
}

/// <summary>The store contract, run against SQLite: a file in a temporary directory of the test's own.</summary>
public sealed class SqliteStoreContractTests : StoreContractTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("anteroom-store-").FullName;

    private string DatabasePath => Path.Combine(_directory, "anteroom.db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private protected override Task<StoreUnderTest> OpenAsync()
    {
        var store = SqliteStore.Open(DatabasePath, Time);
        return Task.FromResult(new StoreUnderTest(store, () => store.DroppedRequestLogEntries));
    }

    private protected override async Task<long> CountRowsAsync(string table)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM {table};";
        return (long)(await command.ExecuteScalarAsync())!;
    }
}

/// <summary>One real PostgreSQL server for a whole test class; each test makes its own database on it.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The store contract, run against PostgreSQL: a fresh database per test on a real server.</summary>
public sealed class PostgresStoreContractTests(PostgresFixture postgres) : StoreContractTests, IClassFixture<PostgresFixture>
{
    private string? _database;

    private protected override async Task<StoreUnderTest> OpenAsync()
    {
        _database ??= await postgres.Server.CreateDatabaseAsync();
        var store = await PostgresStore.OpenAsync(_database, Time);
        return new StoreUnderTest(store, () => store.DroppedRequestLogEntries);
    }

    private protected override async Task<long> CountRowsAsync(string table)
    {
        await using var connection = new NpgsqlConnection(_database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT count(*) FROM {table};", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
