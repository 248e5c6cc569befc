using System.Collections.Concurrent;

namespace Anteroom.Requests;

/// <summary>The in-process <see cref="IRequestRegistry"/>: the requests of a single gateway, in memory.</summary>
internal sealed class InProcessRequestRegistry : IRequestRegistry
{
    private readonly ConcurrentDictionary<string, LiveRequest> _requests = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public ValueTask AddAsync(LiveRequest request)
    {
        _requests[request.Id] = request;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<LiveRequest?> FindAsync(string id, Identity.Caller caller, CancellationToken cancellationToken = default) =>
        new(_requests.TryGetValue(id, out var request) && caller.MayActOn(request.Owner) ? request : null);

    /// <inheritdoc />
    public ValueTask<LiveRequest?> GetAsync(string id, CancellationToken cancellationToken = default) => new(_requests.GetValueOrDefault(id));

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<LiveRequest>> OwnedByAsync(string owner, CancellationToken cancellationToken = default) =>
        new([.. _requests.Values.Where(r => string.Equals(r.Owner, owner, StringComparison.Ordinal)).OrderByDescending(r => r.CreatedAt)]);

    /// <inheritdoc />
    /// <remarks>A single gateway has no other replica.</remarks>
    public ValueTask<SharedRequest?> FindElsewhereAsync(string id, Identity.Caller caller, CancellationToken cancellationToken = default) => default;

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<SharedRequest>> OwnedElsewhereAsync(string owner, CancellationToken cancellationToken = default) => new([]);

    /// <inheritdoc />
    public ValueTask<bool> StopElsewhereAsync(SharedRequest request, string reason) => new(false);

    /// <inheritdoc />
    public ValueTask StopAllAsync(string reason)
    {
        foreach (var request in _requests.Values)
        {
            if (request.EndedAt is null)
            {
                request.Stop(reason);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask StopWaitingAsync(string reason)
    {
        foreach (var request in _requests.Values)
        {
            if (request.EndedAt is null && request.Ticket.State == Scheduling.TicketState.Waiting)
            {
                request.Stop(reason);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<int> SweepAsync(DateTimeOffset endedBefore)
    {
        int removed = 0;
        foreach (var (id, request) in _requests)
        {
            if (request.EndedAt is { } ended && ended < endedBefore && _requests.TryRemove(id, out _))
            {
                removed++;
            }
        }

        return new(removed);
    }
}
