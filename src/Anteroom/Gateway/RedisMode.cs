using Anteroom.Configuration;
using Anteroom.Limits;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Anteroom.Scheduling.Redis;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Anteroom.Gateway;

/// <summary>
/// What Redis mode changes in the composition: one connection to Redis for the whole process; the keys that protect
/// cookies kept there, so a browser signed in through one replica is signed in on every other; and the queue, the
/// rate limits and the request events in Redis, shared by every replica on the same prefix.
/// </summary>
internal static class RedisMode
{
    /// <summary>Registers the Redis connection and moves the cookie protection keys into Redis.</summary>
    public static void AddRedisMode(this IServiceCollection services, RedisOptions redis)
    {
        services.AddSingleton<IConnectionMultiplexer>(provider => Connect(redis, provider.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton(new Replica(ReplicaId()));
        services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((keys, provider) =>
        {
            var connection = provider.GetRequiredService<IConnectionMultiplexer>();
            keys.XmlRepository = new RedisXmlRepository(() => connection.GetDatabase(), Key(redis, "protection-keys"));
        });
        services.AddSingleton(redis);
        // First of all hosted services: before the data protection's own, which creates a key when it finds none.
        services.Insert(0, ServiceDescriptor.Singleton<IHostedService, ProtectionKeyAgreement>());
    }

    /// <summary>
    /// Puts the registry of requests, their events and the per-user rate limits in Redis, where every replica finds,
    /// reads and counts them (the queue is chosen where it is made, <see cref="CreateRequestQueue"/>).
    /// </summary>
    public static void ShareStateInRedis(this IServiceCollection services)
    {
        services.AddSingleton<IRequestRegistry>(provider =>
        {
            var options = provider.GetRequiredService<IOptions<AnteroomOptions>>().Value;
            return new RedisRequestRegistry(
                provider.GetRequiredService<IConnectionMultiplexer>(), options.Redis.Prefix, provider.GetRequiredService<Replica>().Id,
                TimeSpan.FromSeconds(options.Redis.LeaseSeconds), TimeSpan.FromSeconds(options.Stream.RetainSeconds),
                provider.GetRequiredService<TimeProvider>(), provider.GetRequiredService<ILogger<RedisRequestRegistry>>());
        });
        services.AddSingleton<IEventLogFactory>(provider =>
        {
            var options = provider.GetRequiredService<IOptions<AnteroomOptions>>().Value;
            return new RedisEventLogFactory(
                provider.GetRequiredService<IConnectionMultiplexer>(), options.Redis.Prefix, TimeSpan.FromSeconds(options.Stream.RetainSeconds),
                provider.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton<IRateLimiter>(provider => new RedisRateLimiter(
            provider.GetRequiredService<IConnectionMultiplexer>(),
            provider.GetRequiredService<IOptions<AnteroomOptions>>().Value.Redis.Prefix,
            provider.GetRequiredService<TimeProvider>()));
    }

    /// <summary>The queue every replica on the prefix shares, with this process's own replica id for its slot leases.</summary>
    public static IRequestQueue CreateRequestQueue(
        IServiceProvider provider, RedisOptions redis, SchedulerOptions options, IEnumerable<BackendDefinition> backends, TimeProvider time) =>
        RedisQueue.Create(
            provider.GetRequiredService<IConnectionMultiplexer>(), Key(redis, "queue:"), options, backends,
            TimeSpan.FromSeconds(redis.LeaseSeconds), provider.GetRequiredService<Replica>().Id, time);

    /// <summary>
    /// A replica's id: its machine and process, and random bits so that two gateways in one process (as in tests) or a
    /// restarted process with a reused pid are never taken for each other.
    /// </summary>
    private static string ReplicaId() =>
        $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";

    /// <summary>This process among the replicas: the id its slot leases, tickets and requests are recorded under.</summary>
    internal sealed record Replica(string Id);

    /// <summary>A key (or channel) name under the deployment's prefix.</summary>
    public static string Key(RedisOptions redis, string name) => redis.Prefix + ":" + name;

    /// <summary>
    /// Connects without failing when Redis is down at start: the connection keeps trying in the background, requests
    /// meanwhile get 503, and the gateway recovers by itself when Redis answers.
    /// </summary>
    private static ConnectionMultiplexer Connect(RedisOptions redis, ILoggerFactory logs)
    {
        var configuration = ConfigurationOptions.Parse(redis.Configuration!);
        configuration.AbortOnConnectFail = false;
        configuration.ClientName ??= $"anteroom-{Environment.MachineName}-{Environment.ProcessId}";
        configuration.LoggerFactory = logs;
        return ConnectionMultiplexer.Connect(configuration);
    }
}
