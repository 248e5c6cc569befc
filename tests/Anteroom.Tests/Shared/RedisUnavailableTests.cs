using System.Diagnostics;
using Anteroom.Limits;
using Anteroom.Requests;
using Anteroom.Shared;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Tests.Shared;

/// <summary>
/// With Redis gone, the limiter and the event logs fail at once with <see cref="SharedStateUnavailableException"/>
/// instead of hanging for the multiplexer's timeout (30 s here), and work again, as they are, once it is back.
/// </summary>
public sealed class RedisUnavailableTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    /// <summary>Well under the multiplexer's 30 s timeout: an answer this fast did not wait for it.</summary>
    private static readonly TimeSpan Fast = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider time = new();

    [Fact]
    public async Task EveryOperation_FailsFastWhileRedisIsDown_AndWorksAgainOnceItIsBack()
    {
        string prefix = RedisFixture.NewPrefix();
        var limits = new RedisRateLimiter(redis.Connection, prefix, time);
        var logs = new RedisEventLogFactory(redis.Connection, prefix, TimeSpan.FromMinutes(1), time);
        var limit = new RateLimit(10, 1000);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 10)).Allowed);
        var writer = (RedisEventLog)logs.Create("req_1", long.MaxValue);
        writer.Append(new RequestEvent.Token("before"));
        await writer.FlushAsync();
        var reader = (await logs.OpenAsync("req_1"))!;

        await redis.Server.KillAsync();

        await FailsFast(async () => await limits.TryAcquireAsync("alice", limit, 10));
        await FailsFast(async () => await limits.SettleAsync("alice", limit, 10, 5));
        await FailsFast(async () => await limits.ReleaseAsync("alice", limit, 10));
        await FailsFast(async () => await limits.GetStateAsync("alice", limit));
        await FailsFast(async () => await limits.SweepAsync());
        await FailsFast(async () => await logs.OpenAsync("req_1"));
        await FailsFast(async () => await reader.ReadAfterAsync(0, []));
        await FailsFast(async () => await reader.GetWindowAsync());
        await FailsFast(async () => await reader.WaitAfterAsync(0, TimeSpan.FromSeconds(60), CancellationToken.None));
        await FailsFast(async () => await reader.CountFollowersAsync());
        await FailsFast(() => Task.FromResult(reader.Follow(0)));
        await FailsFast(async () => await writer.CountFollowersAsync());

        // The writer's own readers are served from its memory: a running stream goes on without Redis.
        writer.Append(new RequestEvent.Token(" during"));
        var local = new List<StreamEvent>();
        Assert.Equal(LogRead.Open, await writer.ReadAfterAsync(0, local));
        Assert.Equal(2, local.Count);

        var restored = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Commands go down the interactive connection; the subscription one may come back first.
        redis.Connection.ConnectionRestored += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                restored.TrySetResult();
            }
        };
        await redis.Server.StartAgainAsync();
        await restored.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Redis came back empty: the owner starts afresh, and the writer sends its whole log again.
        Assert.True((await limits.TryAcquireAsync("alice", limit, 10)).Allowed);
        Assert.Equal(9, (await limits.GetStateAsync("alice", limit))!.RequestsRemaining);
        writer.Append(new RequestEvent.Cancelled("cancelled_by_user"));
        await writer.FlushAsync();
        var events = new List<StreamEvent>();
        Assert.Equal(LogRead.Complete, await reader.ReadAfterAsync(0, events));
        Assert.Equal(
            ["before", " during"],
            events.Select(e => e.Event).OfType<RequestEvent.Token>().Select(t => t.Text));
        Assert.Equal([1, 2, 3], events.Select(e => e.Id));
    }

    private static async Task FailsFast(Func<Task> operation)
    {
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<SharedStateUnavailableException>(operation);
        Assert.True(clock.Elapsed < Fast, $"took {clock.Elapsed} to fail");
    }
}
