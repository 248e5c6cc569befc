using StackExchange.Redis;

namespace Anteroom.Scheduling.Redis;

/// <summary>Makes the <see cref="IRequestQueue"/> that several gateway replicas share through one Redis.</summary>
public static class RedisQueues
{
    /// <summary>
    /// A queue whose state lives in Redis under <paramref name="keyPrefix"/>: every replica given the same prefix,
    /// options and backends shares one queue per model and the backends' slots. Dispose it (it is
    /// <see cref="IAsyncDisposable"/>) to stop its heartbeat; its leases then run out as a dead replica's do.
    /// </summary>
    /// <param name="connection">The Redis connection; the caller owns it.</param>
    /// <param name="keyPrefix">Every key and channel name starts with it.</param>
    /// <param name="options">The scheduling policy and limits.</param>
    /// <param name="backends">The backends and their slots.</param>
    /// <param name="timeProvider">The clock of every instant and timer.</param>
    /// <param name="leaseDuration">How long this replica's slots outlive its last heartbeat.</param>
    /// <param name="replicaId">This replica's id, unique among the replicas on the prefix.</param>
    public static IRequestQueue Create(
        IConnectionMultiplexer connection,
        string keyPrefix,
        SchedulerOptions options,
        IEnumerable<BackendDefinition> backends,
        TimeProvider? timeProvider,
        TimeSpan leaseDuration,
        string replicaId) =>
        new RedisRequestQueue(connection, keyPrefix, options, backends, timeProvider, leaseDuration, replicaId);
}
