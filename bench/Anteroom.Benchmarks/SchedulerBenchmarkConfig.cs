using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;

namespace Anteroom.Benchmarks;

/// <summary>
/// One short job: every iteration runs exactly <see cref="SchedulerBenchmarks.OperationsPerIteration"/> operations,
/// so the iteration setup can prepare them (and restore the queue length afterwards) outside the measurement.
/// </summary>
public sealed class SchedulerBenchmarkConfig : ManualConfig
{
    public SchedulerBenchmarkConfig()
    {
        Add(DefaultConfig.Instance);
        AddJob(Job.Default
            .WithId("Scheduler")
            .WithLaunchCount(1)
            .WithWarmupCount(5)
            .WithIterationCount(25)
            .WithInvocationCount(SchedulerBenchmarks.OperationsPerIteration)
            .WithUnrollFactor(1));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.P95);
    }
}
