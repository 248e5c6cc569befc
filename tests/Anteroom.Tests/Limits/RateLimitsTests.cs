using Anteroom.Limits;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Limits;

public sealed class RateLimitsTests
{
    private readonly FakeTimeProvider time = new();
    private readonly RateLimits limits;

    public RateLimitsTests() => limits = new RateLimits(time);

    [Fact]
    public void RequestsLimit_RefusesThe61stRequestInAMinute_UntilASecondHasPassed()
    {
        var limit = new RateLimit(60, null);
        for (int i = 0; i < 60; i++)
        {
            Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
        }

        var refused = limits.TryAcquire("alice", limit, 0);

        Assert.False(refused.Allowed);
        Assert.Equal(RateLimits.RequestsPerMinute, refused.Limit);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);
        Assert.Equal(new RateState(60, 0, TimeSpan.FromSeconds(60), null, 0, TimeSpan.Zero), refused.State);

        time.Advance(refused.RetryAfter);
        Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
    }

    [Fact]
    public void TokensLimit_RefusesAndSaysSo()
    {
        var limit = new RateLimit(null, 1000);
        Assert.True(limits.TryAcquire("alice", limit, 800).Allowed);

        var refused = limits.TryAcquire("alice", limit, 300);

        Assert.False(refused.Allowed);
        Assert.Equal(RateLimits.TokensPerMinute, refused.Limit);
        // 100 tokens short at 1000 per minute.
        Assert.Equal(TimeSpan.FromSeconds(6), refused.RetryAfter);
        Assert.Equal(200, refused.State!.TokensRemaining);
        Assert.Null(refused.State.RequestLimit);
    }

    [Fact]
    public void AnAllowedRequest_TakesFromBoth_AndReportsWhatIsLeft()
    {
        var decision = limits.TryAcquire("alice", new RateLimit(60, 1000), 250);

        Assert.True(decision.Allowed);
        Assert.Null(decision.Limit);
        Assert.Equal(TimeSpan.Zero, decision.RetryAfter);
        Assert.Equal(new RateState(60, 59, TimeSpan.FromSeconds(1), 1000, 750, TimeSpan.FromSeconds(15)), decision.State);
    }

    [Fact]
    public void ARefusalByTheTokensLimit_TakesNoRequest()
    {
        var limit = new RateLimit(60, 100);

        Assert.True(limits.TryAcquire("alice", limit, 100).Allowed);
        Assert.Equal(RateLimits.TokensPerMinute, limits.TryAcquire("alice", limit, 50).Limit);

        Assert.Equal(59, limits.State("alice", limit)!.RequestsRemaining);
    }

    [Fact]
    public void ARefusalByTheRequestsLimit_TakesNoTokens()
    {
        var limit = new RateLimit(1, 1000);
        Assert.True(limits.TryAcquire("alice", limit, 100).Allowed);

        var refused = limits.TryAcquire("alice", limit, 100);

        Assert.False(refused.Allowed);
        Assert.Equal(RateLimits.RequestsPerMinute, refused.Limit);
        Assert.Equal(900, limits.State("alice", limit)!.TokensRemaining);
    }

    [Fact]
    public void WhenBothRefuse_TheLongerWaitIsReported()
    {
        var limit = new RateLimit(60, 600);
        for (int i = 0; i < 60; i++)
        {
            Assert.True(limits.TryAcquire("alice", limit, 10).Allowed);
        }

        // Requests: 1 s away. Tokens: 50 at 10 per second, 5 s away.
        var tokensLonger = limits.TryAcquire("alice", limit, 50);
        Assert.Equal((RateLimits.TokensPerMinute, TimeSpan.FromSeconds(5)), (tokensLonger.Limit, tokensLonger.RetryAfter));

        // Requests: 1 s away. Tokens: 5 at 10 per second, 0.5 s away.
        var requestsLonger = limits.TryAcquire("alice", limit, 5);
        Assert.Equal((RateLimits.RequestsPerMinute, TimeSpan.FromSeconds(1)), (requestsLonger.Limit, requestsLonger.RetryAfter));
    }

    [Fact]
    public void Settle_RefundsWhatWasNotUsed()
    {
        var limit = new RateLimit(null, 1000);
        Assert.True(limits.TryAcquire("alice", limit, 800).Allowed);

        limits.Settle("alice", limit, reservedTokens: 800, actualTokens: 300);

        Assert.Equal(700, limits.State("alice", limit)!.TokensRemaining);
    }

    [Fact]
    public void Settle_ChargesAnOverrun_AsDebtThatDelaysTheNextRequest()
    {
        var limit = new RateLimit(null, 600);
        Assert.True(limits.TryAcquire("alice", limit, 500).Allowed);

        limits.Settle("alice", limit, reservedTokens: 500, actualTokens: 700);

        var state = limits.State("alice", limit)!;
        Assert.Equal(0, state.TokensRemaining);
        Assert.Equal(TimeSpan.FromSeconds(70), state.TokensReset);
        var refused = limits.TryAcquire("alice", limit, 10);
        Assert.Equal(TimeSpan.FromSeconds(11), refused.RetryAfter);
    }

    [Fact]
    public void Release_GivesBackTheRequestAndTheTokens()
    {
        var limit = new RateLimit(1, 1000);
        Assert.True(limits.TryAcquire("alice", limit, 400).Allowed);

        limits.Release("alice", limit, 400);

        Assert.Equal(new RateState(1, 1, TimeSpan.Zero, 1000, 1000, TimeSpan.Zero), limits.State("alice", limit));
        Assert.True(limits.TryAcquire("alice", limit, 1000).Allowed);
    }

    [Fact]
    public void Owners_HaveTheirOwnBuckets()
    {
        var limit = new RateLimit(1, null);
        Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
        Assert.False(limits.TryAcquire("alice", limit, 0).Allowed);

        Assert.True(limits.TryAcquire("bob", limit, 0).Allowed);
    }

    [Fact]
    public void AnOwnerNotSeenYet_IsReportedFull()
    {
        var state = limits.State("nobody", new RateLimit(60, 1000));

        Assert.Equal(new RateState(60, 60, TimeSpan.Zero, 1000, 1000, TimeSpan.Zero), state);
        Assert.Equal(0, limits.Sweep());
    }

    [Fact]
    public void Unlimited_AlwaysAllows_AndRemembersNothing()
    {
        for (int i = 0; i < 1000; i++)
        {
            var decision = limits.TryAcquire("owner" + i, RateLimit.Unlimited, 1_000_000);
            Assert.True(decision.Allowed);
            Assert.Null(decision.State);
            limits.Settle("owner" + i, RateLimit.Unlimited, 1_000_000, 2_000_000);
            limits.Release("owner" + i, RateLimit.Unlimited, 1_000_000);
        }

        Assert.Null(limits.State("owner0", RateLimit.Unlimited));
        Assert.Equal(0, limits.Sweep());
    }

    [Fact]
    public void Sweep_DropsOwnersWhoseBucketsAreFull_ButKeepsOwnersInDebt()
    {
        var limit = new RateLimit(60, 1000);
        Assert.True(limits.TryAcquire("light", limit, 10).Allowed);
        Assert.True(limits.TryAcquire("heavy", limit, 10).Allowed);
        limits.Settle("heavy", limit, reservedTokens: 10, actualTokens: 2000);

        Assert.Equal(0, limits.Sweep());

        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(1, limits.Sweep());
        // 990 left after the reservation, 1990 more charged: -1000, plus 61 s at 1000 per minute.
        Assert.Equal(16, limits.State("heavy", limit)!.TokensRemaining);

        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(1, limits.Sweep());
        Assert.Equal(0, limits.Sweep());
    }

    [Fact]
    public void AfterASweep_AnOwnerStartsAfreshWithFullBuckets()
    {
        var limit = new RateLimit(2, null);
        Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(1, limits.Sweep());

        Assert.Equal(2, limits.State("alice", limit)!.RequestsRemaining);
        Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
        Assert.True(limits.TryAcquire("alice", limit, 0).Allowed);
        Assert.False(limits.TryAcquire("alice", limit, 0).Allowed);
    }

    [Fact]
    public void AChangedLimit_ResizesTheOwnersBuckets()
    {
        Assert.True(limits.TryAcquire("alice", new RateLimit(2, null), 0).Allowed);
        Assert.True(limits.TryAcquire("alice", new RateLimit(2, null), 0).Allowed);

        var raised = limits.TryAcquire("alice", new RateLimit(10, null), 0);

        Assert.True(raised.Allowed);
        Assert.Equal(7, raised.State!.RequestsRemaining);
    }
}
