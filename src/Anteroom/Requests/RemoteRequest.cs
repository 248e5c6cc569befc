using Anteroom.Identity;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>The replica that ran a request a connection followed from here is gone; the connection should be dropped.</summary>
internal sealed class RequestOwnerLostException(string requestId)
    : Exception($"The replica that ran request {requestId} stopped answering; a client that reconnects finds where it went.");

/// <summary>
/// A request another replica runs, followed from this one: its log read from Redis, stopped through the replica that
/// runs it (or through the queue when that replica is gone).
/// </summary>
/// <remarks>
/// Its holds are counted with its log (<see cref="IEventLog.Follow"/> counts this replica's readers in Redis), which
/// is how the replica that runs it knows a client still follows. While nothing happens, each quiet interval looks
/// whether the replica that runs it still lives; once it does not, following from here ends
/// (<see cref="RequestOwnerLostException"/>): the client reconnects, and <see cref="RemoteRequests.OpenAsync"/>
/// then takes the request over or ends its log.
/// </remarks>
internal sealed class RemoteRequest : IFollowedRequest
{
    private readonly SharedRequest _shared;
    private readonly RemoteRequests _requests;

    public RemoteRequest(SharedRequest shared, IEventLog log, RemoteRequests requests, Caller caller)
    {
        _shared = shared;
        _requests = requests;
        Events = new WatchedLog(log, this, caller);
    }

    public IEventLog Events { get; }

    /// <summary>Nothing to hold here: the reader is counted with the log.</summary>
    public IDisposable Attach() => NoHold.Instance;

    public void Stop(string reason) => _ = _requests.StopAsync(_shared, reason);

    private sealed class NoHold : IDisposable
    {
        public static readonly NoHold Instance = new();

        public void Dispose()
        {
        }
    }

    /// <summary>The log read from Redis, with a look at the replica that writes it whenever a wait times out.</summary>
    private sealed class WatchedLog(IEventLog log, RemoteRequest request, Caller caller) : IEventLog
    {
        public long MaxBytes => log.MaxBytes;

        public void Append(RequestEvent requestEvent) => log.Append(requestEvent);

        public ValueTask<LogWindow> GetWindowAsync(CancellationToken cancellationToken = default) => log.GetWindowAsync(cancellationToken);

        public ValueTask<LogRead> ReadAfterAsync(long afterId, List<StreamEvent> into, CancellationToken cancellationToken = default) =>
            log.ReadAfterAsync(afterId, into, cancellationToken);

        public async ValueTask<bool> WaitAfterAsync(long afterId, TimeSpan timeout, CancellationToken cancellationToken)
        {
            if (await log.WaitAfterAsync(afterId, timeout, cancellationToken))
            {
                return true;
            }

            if (!await request._requests.IsWriterAliveAsync(request._shared.Id, caller, cancellationToken))
            {
                throw new RequestOwnerLostException(request._shared.Id);
            }

            return false;
        }

        public ILogCursor Follow(long afterId) => log.Follow(afterId);

        public ValueTask<int> CountFollowersAsync(CancellationToken cancellationToken = default) => log.CountFollowersAsync(cancellationToken);
    }
}

/// <summary>
/// What this replica does with requests other replicas admitted (in Redis mode): follows them, shows them, stops
/// them, and takes over those whose replica died.
/// </summary>
internal sealed class RemoteRequests(IRequestRegistry registry, IEventLogFactory logs, IRequestQueue queue, Reception reception)
{
    /// <summary>The error that ends the log of a request whose replica died before it could end it.</summary>
    public const string ReplicaLost = "replica_lost";

    /// <summary>
    /// What a client following <paramref name="shared"/> from here follows, with the hold it takes (if any), or null
    /// when its log is no longer kept. A native chat its owner comes back to while its replica is dead and its ticket
    /// still waits is taken over here and runs from here. A request whose replica died and whose ticket has left
    /// the queue has its log ended with <see cref="ReplicaLost"/>, so every reader sees it end.
    /// </summary>
    public async ValueTask<(IFollowedRequest Request, IDisposable? Hold)?> OpenAsync(SharedRequest shared, Caller caller, CancellationToken cancellationToken)
    {
        if (!shared.ReplicaAlive && shared.Ending is null)
        {
            if (await reception.AdoptAsync(shared, caller) is { } adopted)
            {
                return (adopted.Request, adopted.Hold);
            }

            // Not taken over: if it was lost with its replica, its log now says so, and reading it shows the end.
            await IsLostAsync(shared, cancellationToken);
        }

        return await logs.OpenAsync(shared.Id, cancellationToken) is { } log ? (new RemoteRequest(shared, log, this, caller), null) : null;
    }

    /// <summary>
    /// Whether <paramref name="shared"/> was lost with its replica: the replica is gone, nothing recorded its end,
    /// and its ticket has left the queue. Its log is then ended with <see cref="ReplicaLost"/>, if not already.
    /// </summary>
    public async ValueTask<bool> IsLostAsync(SharedRequest shared, CancellationToken cancellationToken)
    {
        if (shared.ReplicaAlive || shared.Ending is not null || await IsQueuedAsync(shared.Id, cancellationToken))
        {
            return false;
        }

        await logs.CloseAbandonedAsync(shared.Id, Lost, cancellationToken);
        return true;
    }

    /// <summary>Whether the request's ticket still waits or runs in the queue.</summary>
    public async ValueTask<bool> IsQueuedAsync(string id, CancellationToken cancellationToken) =>
        await queue.GetPlaceAsync(id, cancellationToken) is not null ||
        (await queue.GetRunningAsync(cancellationToken)).Any(r => string.Equals(r.Id, id, StringComparison.Ordinal));

    /// <summary>
    /// Stops a request another replica runs: through that replica, or, when it is gone, by cancelling its ticket
    /// (a waiting one ends at once; a running one of a dead replica ends when its lease runs out).
    /// </summary>
    public async Task StopAsync(SharedRequest shared, string reason)
    {
        if (!await registry.StopElsewhereAsync(shared, reason))
        {
            await queue.CancelAsync(shared.Id);
        }
    }

    /// <summary>Whether whoever writes the request's log is still there (or it has ended, so nobody needs to be).</summary>
    internal async ValueTask<bool> IsWriterAliveAsync(string id, Caller caller, CancellationToken cancellationToken) =>
        await registry.FindElsewhereAsync(id, caller, cancellationToken) is { } now && (now.ReplicaAlive || now.Ending is not null);

    private static RequestEvent.Error Lost => new(
        ReplicaLost, "The gateway replica holding this request stopped before it ended; send the request again.", null);
}
