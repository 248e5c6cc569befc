using Anteroom.Limits;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Tests.Limits;

/// <summary>What the Redis limiter adds to the contract: one budget across replicas, and idle owners that vanish.</summary>
public sealed class RedisRateLimiterTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private readonly FakeTimeProvider time = new();

    [Fact]
    public async Task TwoLimitersOnOneRedis_ShareOneOwnersBudget()
    {
        string prefix = RedisFixture.NewPrefix();
        await using var otherConnection = await redis.ConnectAsync();
        var first = new RedisRateLimiter(redis.Connection, prefix, time);
        var second = new RedisRateLimiter(otherConnection, prefix, time);
        var limit = new RateLimit(3, 1000);

        Assert.True((await first.TryAcquireAsync("alice", limit, 400)).Allowed);
        Assert.True((await second.TryAcquireAsync("alice", limit, 400)).Allowed);

        // 200 tokens left between them, whichever replica asks.
        var refused = await first.TryAcquireAsync("alice", limit, 300);
        Assert.False(refused.Allowed);
        Assert.Equal(IRateLimiter.TokensPerMinute, refused.Limit);
        Assert.Equal(TimeSpan.FromSeconds(6), refused.RetryAfter);

        await first.SettleAsync("alice", limit, reservedTokens: 400, actualTokens: 100);
        Assert.Equal(new RateState(3, 1, TimeSpan.FromSeconds(40), 1000, 500, TimeSpan.FromSeconds(30)), await second.GetStateAsync("alice", limit));
        Assert.True((await second.TryAcquireAsync("alice", limit, 300)).Allowed);
        Assert.Equal(IRateLimiter.RequestsPerMinute, (await first.TryAcquireAsync("alice", limit, 0)).Limit);
    }

    [Fact]
    public async Task AnOwnersBuckets_ExpireFromRedisSoonAfterTheyWouldBeFullAgain()
    {
        string prefix = RedisFixture.NewPrefix();
        var limits = new RedisRateLimiter(redis.Connection, prefix, time);

        // Full again in 1 s (one request of 60 per minute) and 30 s (500 tokens of 1000 per minute).
        Assert.True((await limits.TryAcquireAsync("alice", new RateLimit(60, 1000), 500)).Allowed);

        var database = redis.Connection.GetDatabase();
        var keys = await KeysAsync(prefix + ":rl:o:*");
        var key = Assert.Single(keys);
        var ttl = await database.KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(32));
    }

    private async Task<List<RedisKey>> KeysAsync(string pattern)
    {
        var server = redis.Connection.GetServer(redis.Connection.GetEndPoints()[0]);
        var keys = new List<RedisKey>();
        await foreach (var key in server.KeysAsync(pattern: pattern))
        {
            keys.Add(key);
        }

        return keys;
    }
}
