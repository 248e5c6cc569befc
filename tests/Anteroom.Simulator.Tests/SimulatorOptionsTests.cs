namespace Anteroom.Simulator.Tests;

public sealed class SimulatorOptionsTests
{
    [Fact]
    public void Parse_ReadsEveryFlag()
    {
        var options = SimulatorOptions.Parse([
            "--models", "llama3.1:8b, qwen2.5:7b", "--parallel", "4", "--max-queue", "10", "--batching", "--batch-knee", "8",
            "--ttft-ms", "12.5", "--tokens-per-second", "120", "--output-tokens", "32", "--fail-before-first-token", "0.1",
            "--fail-mid-stream", "0.2", "--stall", "0.05", "--disconnect=0.05", "--seed", "-7", "--urls", "http://127.0.0.1:0",
        ]);

        Assert.Equal(["llama3.1:8b", "qwen2.5:7b"], options.Models);
        Assert.Equal((4, 10, true, 8), (options.Parallel, options.MaxQueue, options.Batching, options.BatchKnee));
        Assert.Equal((12.5, 120.0, 32), (options.TtftMs, options.TokensPerSecond, options.OutputTokens));
        Assert.Equal((0.1, 0.2, 0.05, 0.05), (options.FailBeforeFirstTokenRate, options.FailMidStreamRate, options.StallRate, options.DisconnectRate));
        Assert.Equal(-7, options.Seed);
    }

    [Fact]
    public void Parse_NoFlags_KeepsTheDefaults()
    {
        var options = SimulatorOptions.Parse([]);

        Assert.Equal(["llama3.1:8b"], options.Models);
        Assert.Equal((1, 512, false), (options.Parallel, options.MaxQueue, options.Batching));
    }

    [Theory]
    [InlineData("--parallel", "0")]
    [InlineData("--parallel", "two")]
    [InlineData("--max-queue", "-1")]
    [InlineData("--batch-knee", "0")]
    [InlineData("--ttft-ms", "-5")]
    [InlineData("--tokens-per-second", "0")]
    [InlineData("--output-tokens", "1.5")]
    [InlineData("--stall", "1.5")]
    [InlineData("--disconnect", "NaN")]
    [InlineData("--fail-mid-stream", "-0.1")]
    [InlineData("--models", ",")]
    [InlineData("--seed", "x")]
    public void Parse_BadValue_ThrowsNamingTheFlag(string flag, string value)
    {
        var error = Assert.Throws<ArgumentException>(() => SimulatorOptions.Parse([flag, value]));

        Assert.Contains(flag, error.Message, StringComparison.Ordinal);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--models")]
    [InlineData("--parallel")]
    [InlineData("--urls")]
    public void Parse_MissingValue_ThrowsNamingTheFlag(string flag)
    {
        var error = Assert.Throws<ArgumentException>(() => SimulatorOptions.Parse([flag, "--batching"]));

        Assert.Contains(flag, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("parallel")]
    [InlineData("--batching=yes")]
    public void Parse_UnknownFlagOrMisuse_Throws(string arg)
    {
        var error = Assert.Throws<ArgumentException>(() => SimulatorOptions.Parse([arg]));

        Assert.Contains(arg.Split('=')[0], error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FaultRatesAddingToMoreThanOne_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => SimulatorOptions.Parse(["--stall", "0.6", "--disconnect", "0.6"]));

        Assert.Contains("--stall", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartAsync_InvalidOptions_ThrowsBeforeListening()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => SimulatedModelServer.StartAsync(new SimulatorOptions { Parallel = 0 }));
        await Assert.ThrowsAsync<ArgumentException>(() => SimulatedModelServer.StartAsync(new SimulatorOptions { Models = [] }));
    }
}
