using Anteroom.Simulator.Generation;

namespace Anteroom.Simulator.Tests.Generation;

public sealed class GenerationPlannerTests
{
    [Fact]
    public void Plan_DrawsLengthsWithinHalfOfTheMeanEitherSide()
    {
        var planner = new GenerationPlanner(new SimulatorOptions { OutputTokens = 64 });

        var lengths = Enumerable.Range(0, 2000).Select(_ => planner.Plan(null).OutputTokens).ToList();

        Assert.All(lengths, length => Assert.InRange(length, 32, 96));
        Assert.InRange(lengths.Average(), 60, 68);
    }

    [Fact]
    public void Plan_WithALimitBelowTheDrawnLength_CapsItAndSaysLength()
    {
        var planner = new GenerationPlanner(new SimulatorOptions { OutputTokens = 64 });

        var plan = planner.Plan(maxTokens: 7);

        Assert.Equal((7, "length"), (plan.OutputTokens, plan.FinishReason));
    }

    [Fact]
    public void Plan_SameSeed_SamePlans()
    {
        var a = new GenerationPlanner(new SimulatorOptions { Seed = 42, StallRate = 0.5 });
        var b = new GenerationPlanner(new SimulatorOptions { Seed = 42, StallRate = 0.5 });

        Assert.Equal(Enumerable.Range(0, 50).Select(_ => a.Plan(null)), Enumerable.Range(0, 50).Select(_ => b.Plan(null)));
    }

    [Fact]
    public void Plan_MidStreamFault_ComesAfterAtLeastOneTokenAndNotAfterTheLast()
    {
        var planner = new GenerationPlanner(new SimulatorOptions { FailMidStreamRate = 1, OutputTokens = 10 });

        var plans = Enumerable.Range(0, 500).Select(_ => planner.Plan(null)).ToList();

        Assert.All(plans, plan =>
        {
            Assert.Equal(SimulatedFault.FailMidStream, plan.Fault);
            Assert.InRange(plan.FaultAfterToken, 1, plan.OutputTokens - 1);
        });
    }
}
