using Anteroom.Configuration;
using Anteroom.Shared;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using StackExchange.Redis;

namespace Anteroom.Gateway;

/// <summary>
/// Makes the replicas of a deployment agree on one cookie-protection key before any of them serves (Redis mode).
/// </summary>
/// <remarks>
/// Left to itself, each replica that finds no key in Redis creates one the first time it signs a cookie, so replicas
/// started together each make their own. Every key is shared and every cookie still reads everywhere, but a replica
/// meeting a key it has not loaded reloads its key ring on the request's thread; under a burst of such requests that
/// starves the thread pool. Here, at start, a replica takes a lock in Redis, creates the key only if there is none,
/// and loads the key ring before it listens. A replica that starts while Redis is away skips this and creates its
/// key when first needed, as before.
/// </remarks>
internal sealed partial class ProtectionKeyAgreement(
    IConnectionMultiplexer redis, RedisOptions options, IKeyManager keys, IDataProtectionProvider protection,
    RedisMode.Replica replica, TimeProvider time, ILogger<ProtectionKeyAgreement> log) : IHostedService
{
    /// <summary>How long a replica holds the lock at most: far longer than creating a key takes.</summary>
    private static readonly TimeSpan LockExpiry = TimeSpan.FromSeconds(10);

    /// <summary>How long a replica waits for another's lock before it goes on without agreement.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(15);

    /// <summary>How long a key made here lives; the key ring renews it before its end.</summary>
    private static readonly TimeSpan KeyLifetime = TimeSpan.FromDays(90);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!redis.IsConnected)
        {
            LogSkipped("Redis cannot be reached");
            return;
        }

        var database = redis.GetDatabase();
        RedisKey lockKey = RedisMode.Key(options, "protection-keys:lock");
        long started = time.GetTimestamp();
        try
        {
            while (!await database.LockTakeAsync(lockKey, replica.Id, LockExpiry))
            {
                if (time.GetElapsedTime(started) > MaxWait)
                {
                    LogSkipped("another replica held the lock too long");
                    return;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(50), time, cancellationToken);
            }

            try
            {
                var now = time.GetUtcNow();
                if (!keys.GetAllKeys().Any(k => !k.IsRevoked && k.ActivationDate <= now && k.ExpirationDate > now))
                {
                    keys.CreateNewKey(now, now + KeyLifetime);
                }
            }
            finally
            {
                await database.LockReleaseAsync(lockKey, replica.Id);
            }

            // Loads the key ring now, off any request's path.
            protection.CreateProtector("Anteroom.ProtectionKeyAgreement").Protect([1]);
        }
        catch (Exception e) when (SharedState.IsUnreachable(e))
        {
            LogSkipped(e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Did not agree on a cookie-protection key with the other replicas at start ({Reason}); one is made when first needed")]
    private partial void LogSkipped(string reason);
}
