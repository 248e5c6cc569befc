using System.Collections.Concurrent;
using Anteroom.Storage;

namespace Anteroom.Identity;

/// <summary>
/// Browser sign-ins that signed out. The store is the truth, shared by every server on the database; answers are
/// cached for <see cref="CacheFor"/> so a busy browser does not cost a query per request. A sign-out counts at once
/// on the server that took it, and within <see cref="CacheFor"/> on the others.
/// </summary>
internal sealed class SignedOutSessions(ISessionStore store, TimeProvider time)
{
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, (bool SignedOut, DateTimeOffset CheckedAt)> _checked = new(StringComparer.Ordinal);
    private long _lastSweepTicks = time.GetUtcNow().UtcTicks;

    public bool IsSignedOut(string id)
    {
        var now = time.GetUtcNow();
        SweepNowAndThen(now);
        if (_checked.TryGetValue(id, out var known) && now - known.CheckedAt < CacheFor)
        {
            return known.SignedOut;
        }

        bool signedOut = store.IsSessionRevoked(id);
        _checked[id] = (signedOut, now);
        return signedOut;
    }

    /// <summary>Ends session <paramref name="id"/> for good; durable before it returns.</summary>
    public async Task SignOutAsync(string id, DateTimeOffset cookieExpires, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await store.RevokeSessionAsync(id, now, cookieExpires, cancellationToken).ConfigureAwait(false);
        _checked[id] = (true, now);
    }

    // Stale answers would be asked again anyway; dropping them keeps the cache as small as the recent traffic.
    private void SweepNowAndThen(DateTimeOffset now)
    {
        long last = Interlocked.Read(ref _lastSweepTicks);
        if (now.UtcTicks - last < CacheFor.Ticks * 12 || Interlocked.CompareExchange(ref _lastSweepTicks, now.UtcTicks, last) != last)
        {
            return;
        }

        foreach (var (id, known) in _checked)
        {
            if (now - known.CheckedAt >= CacheFor)
            {
                _checked.TryRemove(new KeyValuePair<string, (bool, DateTimeOffset)>(id, known));
            }
        }
    }
}
