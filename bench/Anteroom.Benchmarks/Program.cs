using Anteroom.Benchmarks;
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(SchedulerBenchmarks).Assembly).Run(args, new SchedulerBenchmarkConfig());
