using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using Perfolizer.Mathematics.OutlierDetection;

namespace Anteroom.Benchmarks;

/// <summary>
/// One short job: every iteration runs exactly <see cref="SchedulerBenchmarks.OperationsPerIteration"/> operations,
/// so the iteration setup can prepare them (and restore the queue length afterwards) outside the measurement.
/// </summary>
public sealed class SchedulerBenchmarkConfig : ManualConfig
{
    public SchedulerBenchmarkConfig()
    {
        AddJob(Job.Default
            .WithId("Scheduler")
            .WithLaunchCount(3)
            .WithWarmupCount(5)
            .WithIterationCount(30)
            .WithInvocationCount(SchedulerBenchmarks.OperationsPerIteration)
            .WithUnrollFactor(1)
            // A forced full collection between iterations reshuffles a heap of a million tickets and made the
            // timings vary threefold; without it, the collections the operations cause fall inside the iterations.
            .WithGcForce(false)
            .WithOutlierMode(OutlierMode.DontRemove));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.Median, StatisticColumn.P95);
    }
}
