using Anteroom.Configuration;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Anteroom.Gateway;

/// <summary>
/// What Redis mode changes in the composition: one connection to Redis for the whole process, and the keys that
/// protect cookies kept there, so a browser signed in through one replica is signed in on every other.
/// </summary>
internal static class RedisMode
{
    /// <summary>Registers the Redis connection and moves the cookie protection keys into Redis.</summary>
    public static void AddRedisMode(this IServiceCollection services, RedisOptions redis)
    {
        services.AddSingleton<IConnectionMultiplexer>(provider => Connect(redis, provider.GetRequiredService<ILoggerFactory>()));
        services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((keys, provider) =>
        {
            var connection = provider.GetRequiredService<IConnectionMultiplexer>();
            keys.XmlRepository = new RedisXmlRepository(() => connection.GetDatabase(), Key(redis, "protection-keys"));
        });
    }

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
