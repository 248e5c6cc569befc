using Anteroom.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Storage;

public sealed class CachedKeyStoreTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _time = new(T0);
    private readonly CountingKeyStore _inner = new();

    private CachedKeyStore Cache(double seconds = 1) => new(_inner, TimeSpan.FromSeconds(seconds), _time);

    private static StoredKey Key(string id, DateTimeOffset? revokedAt = null) =>
        new(id, "alice", "default", [1], [2], T0, null, revokedAt, Admin: false, CanActForUsers: false);

    [Fact]
    public void FindKey_WithinFreshness_AsksTheStoreOnce()
    {
        _inner.Keys["k1"] = Key("k1");
        var cache = Cache();

        var first = cache.FindKey("k1");
        _time.Advance(TimeSpan.FromMilliseconds(999));
        var second = cache.FindKey("k1");

        Assert.Same(first, second);
        Assert.Equal(1, _inner.Lookups);
    }

    [Fact]
    public void ARevocationByAnotherProcess_IsSeenOnceTheFreshnessHasPassed()
    {
        _inner.Keys["k1"] = Key("k1");
        var cache = Cache();
        cache.FindKey("k1");

        _inner.Keys["k1"] = Key("k1", revokedAt: T0); // written by the keys command, not through this cache
        var stale = cache.FindKey("k1");
        _time.Advance(TimeSpan.FromSeconds(1));
        var fresh = cache.FindKey("k1");

        Assert.Null(stale!.RevokedAt);
        Assert.Equal(T0, fresh!.RevokedAt);
    }

    [Fact]
    public async Task ARevocationThroughTheCache_TakesEffectAtOnce()
    {
        _inner.Keys["k1"] = Key("k1");
        var cache = Cache(seconds: 60);
        cache.FindKey("k1");

        Assert.True(await cache.RevokeKeyAsync("k1", T0));

        Assert.Equal(T0, cache.FindKey("k1")!.RevokedAt);
    }

    [Fact]
    public async Task ALookupThatReadTheKeyBeforeARevocationThroughTheCache_DoesNotKeepItAlive()
    {
        _inner.Keys["k1"] = Key("k1");
        var cache = Cache(seconds: 60);
        // The revocation lands while the lookup is between its read of the database and its caching of the result.
        _inner.AfterRead = () => cache.RevokeKeyAsync("k1", T0).GetAwaiter().GetResult();

        var racing = cache.FindKey("k1");
        _inner.AfterRead = null;
        var next = cache.FindKey("k1");

        Assert.Null(racing!.RevokedAt);
        Assert.Equal(T0, next!.RevokedAt);
    }

    [Fact]
    public void UnknownIds_AreRemembered_AndTheCacheStaysBounded()
    {
        var cache = Cache();

        Assert.Null(cache.FindKey("nope"));
        Assert.Null(cache.FindKey("nope"));
        for (int i = 0; i < CachedKeyStore.MaxEntries + 10; i++)
        {
            cache.FindKey("spray" + i);
        }

        Assert.Equal(1 + CachedKeyStore.MaxEntries + 10, _inner.Lookups);
        // Emptied once when it filled: the first sprayed ids are asked for again.
        cache.FindKey("spray0");
        Assert.Equal(2 + CachedKeyStore.MaxEntries + 10, _inner.Lookups);
    }

    [Fact]
    public void AFreshnessOfZero_AsksTheStoreEveryTime()
    {
        _inner.Keys["k1"] = Key("k1");
        var cache = Cache(seconds: 0);

        cache.FindKey("k1");
        cache.FindKey("k1");

        Assert.Equal(2, _inner.Lookups);
    }

    private sealed class CountingKeyStore : IKeyStore
    {
        public Dictionary<string, StoredKey> Keys { get; } = new(StringComparer.Ordinal);

        public int Lookups { get; private set; }

        public Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default)
        {
            Keys.Add(key.Id, key);
            return Task.CompletedTask;
        }

        public Action? AfterRead { get; set; }

        public StoredKey? FindKey(string id)
        {
            Lookups++;
            var key = Keys.GetValueOrDefault(id);
            AfterRead?.Invoke();
            return key;
        }

        public Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<StoredKey>>([.. Keys.Values]);

        public Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default)
        {
            if (!Keys.TryGetValue(id, out var key) || key.RevokedAt is not null)
            {
                return Task.FromResult(false);
            }

            Keys[id] = key with { RevokedAt = at };
            return Task.FromResult(true);
        }
    }
}
