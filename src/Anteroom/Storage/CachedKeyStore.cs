using System.Collections.Concurrent;

namespace Anteroom.Storage;

/// <summary>
/// Keys as every request sees them: a lookup is kept for at most <paramref name="freshness"/>, so a keyed request
/// costs a dictionary read rather than a database query, and a key revoked or created by another process (the
/// <c>keys</c> command, another replica) takes effect within that time. A revocation through this store takes
/// effect at once. Unknown ids are remembered too, so a client spraying made-up keys does not reach the database on
/// each try; the cache is emptied when it grows past <see cref="MaxEntries"/>, which bounds its memory.
/// </summary>
internal sealed class CachedKeyStore(IKeyStore inner, TimeSpan freshness, TimeProvider time) : IKeyStore
{
    public const int MaxEntries = 65_536;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private int _count;
    // Moves on every change made through this store: a lookup that read the database before a change finished must
    // not cache what it read, or a key revoked here would keep working until the entry went stale.
    private long _changes;

    public StoredKey? FindKey(string id)
    {
        long now = time.GetTimestamp();
        if (_entries.TryGetValue(id, out var entry) && time.GetElapsedTime(entry.FetchedAt, now) < freshness)
        {
            return entry.Key;
        }

        long changes = Interlocked.Read(ref _changes);
        var key = inner.FindKey(id);
        if (Interlocked.Read(ref _changes) != changes)
        {
            return key;
        }

        if (Interlocked.Increment(ref _count) > MaxEntries)
        {
            _entries.Clear();
            Interlocked.Exchange(ref _count, 1);
        }

        _entries[id] = new Entry(key, now);
        return key;
    }

    public async Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default)
    {
        await inner.AddKeyAsync(key, cancellationToken);
        Forget(key.Id);
    }

    public Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default) => inner.ListKeysAsync(cancellationToken);

    public async Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        bool revoked = await inner.RevokeKeyAsync(id, at, cancellationToken);
        Forget(id);
        return revoked;
    }

    /// <summary>After a change is written: drops the entry, and keeps lookups that raced the write from caching.</summary>
    private void Forget(string id)
    {
        Interlocked.Increment(ref _changes);
        _entries.TryRemove(id, out _);
    }

    private sealed record Entry(StoredKey? Key, long FetchedAt);
}
