using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Anteroom.Benchmarks;

/// <summary>
/// A short job for an operation of about a microsecond: BenchmarkDotNet sizes the iterations itself; one process,
/// enough iterations for a median and a P95 within a minute or two.
/// </summary>
/// <remarks>
/// In process: the measured code is the gateway's own, already built by <c>dotnet run</c>, rather than a copy that
/// BenchmarkDotNet rebuilds from the working tree while it may be changing.
/// </remarks>
public sealed class TokenPathBenchmarkConfig : ManualConfig
{
    public TokenPathBenchmarkConfig()
    {
        AddJob(Job.Default
            .WithId("TokenPath")
            .WithLaunchCount(1)
            .WithWarmupCount(5)
            .WithIterationCount(20)
            .WithToolchain(InProcessEmitToolchain.Instance));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.P95);
    }
}
