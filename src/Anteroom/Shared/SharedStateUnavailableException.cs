using StackExchange.Redis;

namespace Anteroom.Shared;

/// <summary>
/// The state shared by the replicas (Redis) cannot be reached, so an operation that needs it failed at once
/// instead of waiting for it to come back. Callers turn it into a 503 with <c>Retry-After</c>.
/// </summary>
internal sealed class SharedStateUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException)
{
}

/// <summary>Runs Redis operations so that an unreachable Redis fails fast with <see cref="SharedStateUnavailableException"/>.</summary>
/// <remarks>
/// A multiplexer that lost its server queues commands until its timeout (seconds) by default; a request waiting for
/// an admission decision must not hang that long. So an operation is refused at once while the multiplexer knows it
/// is disconnected, and one that was in flight when the connection broke surfaces as the same exception. The
/// multiplexer reconnects by itself: the next operation after Redis is back simply works.
/// </remarks>
internal static class SharedState
{
    /// <summary>Throws <see cref="SharedStateUnavailableException"/> when <paramref name="redis"/> has no connected server.</summary>
    public static void EnsureConnected(IConnectionMultiplexer redis)
    {
        if (!redis.IsConnected)
        {
            throw Unavailable(null);
        }
    }

    /// <summary>Whether <paramref name="exception"/> means Redis could not be reached (rather than a bug or a bad reply).</summary>
    public static bool IsUnreachable(Exception exception) =>
        exception is RedisConnectionException or RedisTimeoutException or ObjectDisposedException;

    /// <summary>What a caller refused for want of Redis is told to wait: about how long the connection takes to notice Redis is back.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Whether a request failed because Redis is out of reach: a <see cref="SharedStateUnavailableException"/>, or a
    /// Redis connection failure that escaped the wrappers, anywhere in the chain of causes.
    /// </summary>
    public static bool ExplainsFailure(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SharedStateUnavailableException or RedisConnectionException or RedisTimeoutException)
            {
                return true;
            }
        }

        return false;
    }

    public static SharedStateUnavailableException Unavailable(Exception? cause) =>
        new("Redis cannot be reached; the state shared by the gateway's replicas is unavailable.", cause);

    /// <summary>Awaits a Redis operation, turning a lost connection into <see cref="SharedStateUnavailableException"/>.</summary>
    public static async Task<T> CallAsync<T>(IConnectionMultiplexer redis, Func<Task<T>> operation)
    {
        EnsureConnected(redis);
        try
        {
            return await operation();
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            throw Unavailable(e);
        }
    }
}
