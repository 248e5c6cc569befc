using StackExchange.Redis;

namespace Anteroom.Gateway;

/// <summary>Tells the failures that mean "Redis cannot be reached now" from every other failure.</summary>
internal static class SharedStateOutage
{
    /// <summary>What a refused caller is told to wait: about how long the connection takes to notice Redis is back.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    /// <summary>Whether <paramref name="exception"/> (or what it wraps) says Redis is out of reach, rather than a fault in Anteroom.</summary>
    public static bool Explains(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is RedisConnectionException or RedisTimeoutException)
            {
                return true;
            }
        }

        return false;
    }
}
