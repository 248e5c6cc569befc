using Anteroom.Limits;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Limits;

/// <summary>
/// What every <see cref="IRateLimiter"/> must do, written against the interface alone; each implementation derives
/// a class that says how to make one on a given clock.
/// </summary>
public abstract partial class RateLimiterContractTests
{
    private readonly FakeTimeProvider time = new();
    private readonly IRateLimiter limits;

    protected RateLimiterContractTests() => limits = Create(time);

    /// <summary>A fresh limiter that reads the time from <paramref name="clock"/>.</summary>
    private protected abstract IRateLimiter Create(FakeTimeProvider clock);

    [Fact]
    public async Task RequestsLimit_RefusesThe61stRequestInAMinute_UntilASecondHasPassed()
    {
        var limit = new RateLimit(60, null);
        for (int i = 0; i < 60; i++)
        {
            Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
        }

        var refused = await limits.TryAcquireAsync("alice", limit, 0);

        Assert.False(refused.Allowed);
        Assert.Equal(IRateLimiter.RequestsPerMinute, refused.Limit);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);
        Assert.Equal(new RateState(60, 0, TimeSpan.FromSeconds(60), null, 0, TimeSpan.Zero), refused.State);

        time.Advance(refused.RetryAfter);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
    }

    [Fact]
    public async Task TokensLimit_RefusesAndSaysSo()
    {
        var limit = new RateLimit(null, 1000);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 800)).Allowed);

        var refused = await limits.TryAcquireAsync("alice", limit, 300);

        Assert.False(refused.Allowed);
        Assert.Equal(IRateLimiter.TokensPerMinute, refused.Limit);
        // 100 tokens short at 1000 per minute.
        Assert.Equal(TimeSpan.FromSeconds(6), refused.RetryAfter);
        Assert.Equal(200, refused.State!.TokensRemaining);
        Assert.Null(refused.State.RequestLimit);
    }

    [Fact]
    public async Task AnAllowedRequest_TakesFromBoth_AndReportsWhatIsLeft()
    {
        var decision = await limits.TryAcquireAsync("alice", new RateLimit(60, 1000), 250);

        Assert.True(decision.Allowed);
        Assert.Null(decision.Limit);
        Assert.Equal(TimeSpan.Zero, decision.RetryAfter);
        Assert.Equal(new RateState(60, 59, TimeSpan.FromSeconds(1), 1000, 750, TimeSpan.FromSeconds(15)), decision.State);
    }

    [Fact]
    public async Task ARefusalByTheTokensLimit_TakesNoRequest()
    {
        var limit = new RateLimit(60, 100);

        Assert.True((await limits.TryAcquireAsync("alice", limit, 100)).Allowed);
        Assert.Equal(IRateLimiter.TokensPerMinute, (await limits.TryAcquireAsync("alice", limit, 50)).Limit);

        Assert.Equal(59, (await limits.GetStateAsync("alice", limit))!.RequestsRemaining);
    }

    [Fact]
    public async Task ARefusalByTheRequestsLimit_TakesNoTokens()
    {
        var limit = new RateLimit(1, 1000);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 100)).Allowed);

        var refused = await limits.TryAcquireAsync("alice", limit, 100);

        Assert.False(refused.Allowed);
        Assert.Equal(IRateLimiter.RequestsPerMinute, refused.Limit);
        Assert.Equal(900, (await limits.GetStateAsync("alice", limit))!.TokensRemaining);
    }

    [Fact]
    public async Task WhenBothRefuse_TheLongerWaitIsReported()
    {
        var limit = new RateLimit(60, 600);
        for (int i = 0; i < 60; i++)
        {
            Assert.True((await limits.TryAcquireAsync("alice", limit, 10)).Allowed);
        }

        // Requests: 1 s away. Tokens: 50 at 10 per second, 5 s away.
        var tokensLonger = await limits.TryAcquireAsync("alice", limit, 50);
        Assert.Equal((IRateLimiter.TokensPerMinute, TimeSpan.FromSeconds(5)), (tokensLonger.Limit, tokensLonger.RetryAfter));

        // Requests: 1 s away. Tokens: 5 at 10 per second, 0.5 s away.
        var requestsLonger = await limits.TryAcquireAsync("alice", limit, 5);
        Assert.Equal((IRateLimiter.RequestsPerMinute, TimeSpan.FromSeconds(1)), (requestsLonger.Limit, requestsLonger.RetryAfter));
    }

    [Fact]
    public async Task Settle_RefundsWhatWasNotUsed()
    {
        var limit = new RateLimit(null, 1000);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 800)).Allowed);

        await limits.SettleAsync("alice", limit, reservedTokens: 800, actualTokens: 300);

        Assert.Equal(700, (await limits.GetStateAsync("alice", limit))!.TokensRemaining);
    }

    [Fact]
    public async Task Settle_ChargesAnOverrun_AsDebtThatDelaysTheNextRequest()
    {
        var limit = new RateLimit(null, 600);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 500)).Allowed);

        await limits.SettleAsync("alice", limit, reservedTokens: 500, actualTokens: 700);

        var state = (await limits.GetStateAsync("alice", limit))!;
        Assert.Equal(0, state.TokensRemaining);
        Assert.Equal(TimeSpan.FromSeconds(70), state.TokensReset);
        var refused = await limits.TryAcquireAsync("alice", limit, 10);
        Assert.Equal(TimeSpan.FromSeconds(11), refused.RetryAfter);
    }

    [Fact]
    public async Task Release_GivesBackTheRequestAndTheTokens()
    {
        var limit = new RateLimit(1, 1000);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 400)).Allowed);

        await limits.ReleaseAsync("alice", limit, 400);

        Assert.Equal(new RateState(1, 1, TimeSpan.Zero, 1000, 1000, TimeSpan.Zero), await limits.GetStateAsync("alice", limit));
        Assert.True((await limits.TryAcquireAsync("alice", limit, 1000)).Allowed);
    }

    [Fact]
    public async Task Owners_HaveTheirOwnBuckets()
    {
        var limit = new RateLimit(1, null);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
        Assert.False((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);

        Assert.True((await limits.TryAcquireAsync("bob", limit, 0)).Allowed);
    }

    [Fact]
    public async Task AnOwnerNotSeenYet_IsReportedFull()
    {
        var state = await limits.GetStateAsync("nobody", new RateLimit(60, 1000));

        Assert.Equal(new RateState(60, 60, TimeSpan.Zero, 1000, 1000, TimeSpan.Zero), state);
        Assert.Equal(0, await limits.SweepAsync());
    }

    [Fact]
    public async Task Unlimited_AlwaysAllows_AndRemembersNothing()
    {
        for (int i = 0; i < 1000; i++)
        {
            var decision = await limits.TryAcquireAsync("owner" + i, RateLimit.Unlimited, 1_000_000);
            Assert.True(decision.Allowed);
            Assert.Null(decision.State);
            await limits.SettleAsync("owner" + i, RateLimit.Unlimited, 1_000_000, 2_000_000);
            await limits.ReleaseAsync("owner" + i, RateLimit.Unlimited, 1_000_000);
        }

        Assert.Null(await limits.GetStateAsync("owner0", RateLimit.Unlimited));
        Assert.Equal(0, await limits.SweepAsync());
    }

    [Fact]
    public async Task Sweep_DropsOwnersWhoseBucketsAreFull_ButKeepsOwnersInDebt()
    {
        var limit = new RateLimit(60, 1000);
        Assert.True((await limits.TryAcquireAsync("light", limit, 10)).Allowed);
        Assert.True((await limits.TryAcquireAsync("heavy", limit, 10)).Allowed);
        await limits.SettleAsync("heavy", limit, reservedTokens: 10, actualTokens: 2000);

        Assert.Equal(0, await limits.SweepAsync());

        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(1, await limits.SweepAsync());
        // 990 left after the reservation, 1990 more charged: -1000, plus 61 s at 1000 per minute.
        Assert.Equal(16, (await limits.GetStateAsync("heavy", limit))!.TokensRemaining);

        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(1, await limits.SweepAsync());
        Assert.Equal(0, await limits.SweepAsync());
    }

    [Fact]
    public async Task AfterASweep_AnOwnerStartsAfreshWithFullBuckets()
    {
        var limit = new RateLimit(2, null);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(1, await limits.SweepAsync());

        Assert.Equal(2, (await limits.GetStateAsync("alice", limit))!.RequestsRemaining);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
        Assert.True((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
        Assert.False((await limits.TryAcquireAsync("alice", limit, 0)).Allowed);
    }

    [Fact]
    public async Task AChangedLimit_ResizesTheOwnersBuckets()
    {
        Assert.True((await limits.TryAcquireAsync("alice", new RateLimit(2, null), 0)).Allowed);
        Assert.True((await limits.TryAcquireAsync("alice", new RateLimit(2, null), 0)).Allowed);

        var raised = await limits.TryAcquireAsync("alice", new RateLimit(10, null), 0);

        Assert.True(raised.Allowed);
        Assert.Equal(7, raised.State!.RequestsRemaining);
    }
}

/// <summary>The rate-limiter contract, run against the in-process limiter.</summary>
public sealed class InProcessRateLimiterContractTests : RateLimiterContractTests
{
    private protected override IRateLimiter Create(FakeTimeProvider clock) => new InProcessRateLimiter(clock);
}

/// <summary>The rate-limiter contract, run against the limiter in a real Redis.</summary>
public sealed class RedisRateLimiterContractTests(RedisFixture redis) : RateLimiterContractTests, IClassFixture<RedisFixture>
{
    private protected override IRateLimiter Create(FakeTimeProvider clock) =>
        new RedisRateLimiter(redis.Connection, RedisFixture.NewPrefix(), clock);
}
