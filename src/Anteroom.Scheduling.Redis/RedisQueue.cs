using StackExchange.Redis;

namespace Anteroom.Scheduling.Redis;

/// <summary>Makes the <see cref="IRequestQueue"/> that several gateway replicas share through Redis.</summary>
public static class RedisQueue
{
    /// <summary>
    /// A queue in Redis under <paramref name="keyPrefix"/>, shared with every replica given the same prefix, options
    /// and backends. Dispose it (it is <see cref="IAsyncDisposable"/>) to stop its timers and subscriptions; that
    /// ends nothing in the store.
    /// </summary>
    /// <param name="connection">The Redis connection; the caller owns it.</param>
    /// <param name="keyPrefix">Every key and channel starts with it; put a hash tag in it (<c>{anteroom}:</c>) on a cluster.</param>
    /// <param name="options">The scheduling policy and limits.</param>
    /// <param name="backends">The backends.</param>
    /// <param name="leaseDuration">How long a replica's slots outlive its last sign of life; its heartbeat renews them at a third of it.</param>
    /// <param name="replicaId">This replica's id, unique among the replicas on the prefix.</param>
    /// <param name="timeProvider">The clock; the system clock when null.</param>
    public static IRequestQueue Create(
        IConnectionMultiplexer connection,
        string keyPrefix,
        SchedulerOptions options,
        IEnumerable<BackendDefinition> backends,
        TimeSpan leaseDuration,
        string replicaId,
        TimeProvider? timeProvider = null) =>
        new RedisRequestQueue(connection, keyPrefix, options, backends, timeProvider, leaseDuration, replicaId);
}
