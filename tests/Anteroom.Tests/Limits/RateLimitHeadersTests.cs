using Anteroom.Limits;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Tests.Limits;

public sealed class RateLimitHeadersTests
{
    [Theory]
    [InlineData(0L, "0s")]
    [InlineData(-10_000L, "0s")]
    [InlineData(1L, "1ms")]
    [InlineData(2_500_000L, "250ms")]
    [InlineData(9_990_000L, "999ms")]
    [InlineData(9_995_000L, "1s")]
    [InlineData(10_000_000L, "1s")]
    [InlineData(65_000_000L, "6.5s")]
    [InlineData(12_340_000L, "1.234s")]
    [InlineData(599_990_000L, "59.999s")]
    [InlineData(600_000_000L, "1m0s")]
    [InlineData(3_600_000_000L, "6m0s")]
    [InlineData(905_000_000L, "1m30.5s")]
    [InlineData(36_000_000_000L, "1h0m0s")]
    [InlineData(37_230_000_000L, "1h2m3s")]
    public void Duration_IsWrittenLikeOpenAI(long ticks, string expected)
    {
        Assert.Equal(expected, RateLimitHeaders.Duration(TimeSpan.FromTicks(ticks)));
    }

    [Fact]
    public void Write_ReportsBothDimensionsWhenBothAreLimited()
    {
        var headers = new HeaderDictionary();

        RateLimitHeaders.Write(headers, new RateState(60, 59, TimeSpan.FromSeconds(1), 150_000, 149_984, TimeSpan.FromMilliseconds(6)));

        Assert.Equal("60", headers["x-ratelimit-limit-requests"]);
        Assert.Equal("59", headers["x-ratelimit-remaining-requests"]);
        Assert.Equal("1s", headers["x-ratelimit-reset-requests"]);
        Assert.Equal("150000", headers["x-ratelimit-limit-tokens"]);
        Assert.Equal("149984", headers["x-ratelimit-remaining-tokens"]);
        Assert.Equal("6ms", headers["x-ratelimit-reset-tokens"]);
    }

    [Fact]
    public void Write_LeavesOutADimensionThatIsNotLimited()
    {
        var headers = new HeaderDictionary();

        RateLimitHeaders.Write(headers, new RateState(null, 0, TimeSpan.Zero, 1000, 400, TimeSpan.FromSeconds(36)));

        Assert.Equal(["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"], headers.Keys.Order());
        Assert.Equal("36s", headers["x-ratelimit-reset-tokens"]);
    }
}
