using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Anteroom.Requests;

/// <summary>The live and recently ended requests, by id, so holders can follow, replay and cancel them.</summary>
internal sealed class RequestRegistry
{
    private readonly ConcurrentDictionary<string, LiveRequest> _requests = new(StringComparer.Ordinal);

    /// <summary>A new request id: 120 random bits, so an id cannot be guessed.</summary>
    public static string NewId() => "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(15));

    public int Count => _requests.Count;

    public void Add(LiveRequest request) => _requests[request.Id] = request;

    /// <summary>The request with this id, only if <paramref name="owner"/> owns it: nobody learns that another's id exists.</summary>
    public LiveRequest? FindOwned(string id, string owner) =>
        _requests.TryGetValue(id, out var request) && string.Equals(request.Owner, owner, StringComparison.Ordinal) ? request : null;

    /// <summary>Stops every request that has not ended, telling its holders why.</summary>
    public void StopAll(string reason)
    {
        foreach (var request in _requests.Values)
        {
            if (request.EndedAt is null)
            {
                request.Stop(reason);
            }
        }
    }

    /// <summary>Forgets requests that ended before <paramref name="endedBefore"/>.</summary>
    public int Sweep(DateTimeOffset endedBefore)
    {
        int removed = 0;
        foreach (var (id, request) in _requests)
        {
            if (request.EndedAt is { } ended && ended < endedBefore && _requests.TryRemove(id, out _))
            {
                removed++;
            }
        }

        return removed;
    }
}
