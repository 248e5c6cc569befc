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

    /// <summary>
    /// The request with this id, only if the caller owns it or is an admin: nobody else learns that the id exists.
    /// </summary>
    public LiveRequest? Find(string id, Identity.Caller caller) =>
        _requests.TryGetValue(id, out var request) && caller.MayActOn(request.Owner) ? request : null;

    /// <summary>The owner's live and recently ended requests, newest first.</summary>
    public IReadOnlyList<LiveRequest> OwnedBy(string owner) =>
        [.. _requests.Values.Where(r => string.Equals(r.Owner, owner, StringComparison.Ordinal)).OrderByDescending(r => r.CreatedAt)];

    /// <summary>The request with this id, whoever owns it (for the operator).</summary>
    public LiveRequest? Get(string id) => _requests.GetValueOrDefault(id);

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
