using Anteroom.Simulator.Generation;

namespace Anteroom.Simulator.Tests.Generation;

public sealed class BatchingCurveTests
{
    [Fact]
    public void Slowdown_FollowsThePublishedVllmShape()
    {
        Assert.Equal(1, BatchingCurve.Slowdown(1, knee: 16));
        Assert.Equal(1.7, BatchingCurve.Slowdown(16, knee: 16), precision: 6);
        Assert.InRange(BatchingCurve.Slowdown(64, knee: 16), 6.5, 7.5);
    }

    [Fact]
    public void Slowdown_RisesWithEveryGenerationAndSteeperPastTheKnee()
    {
        var factors = Enumerable.Range(1, 100).Select(n => BatchingCurve.Slowdown(n, knee: 16)).ToList();

        Assert.All(factors.Zip(factors.Skip(1)), pair => Assert.True(pair.Second > pair.First));
        var gentle = factors[15] - factors[14];
        var steep = factors[16] - factors[15];
        Assert.True(steep > 2 * gentle);
    }
}
