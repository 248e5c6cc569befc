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

    public StoredKey? FindKey(string id)
    {
        long now = time.GetTimestamp();
        if (_entries.TryGetValue(id, out var entry) && time.GetElapsedTime(entry.FetchedAt, now) < freshness)
        {
            return entry.Key;
        }

        var key = inner.FindKey(id);
        if (_entries.Count >= MaxEntries)
        {
            _entries.Clear();
        }

        _entries[id] = new Entry(key, now);
        return key;
    }

    public Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default)
    {
        _entries.TryRemove(key.Id, out _);
        return inner.AddKeyAsync(key, cancellationToken);
    }

    public Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default) => inner.ListKeysAsync(cancellationToken);

    public async Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        bool revoked = await inner.RevokeKeyAsync(id, at, cancellationToken);
        // After the write: a lookup racing it may have cached the key as it was, and is dropped here.
        _entries.TryRemove(id, out _);
        return revoked;
    }

    private sealed record Entry(StoredKey? Key, long FetchedAt);
}
