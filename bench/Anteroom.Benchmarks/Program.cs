using Anteroom.Benchmarks;
using BenchmarkDotNet.Running;

// Each benchmark class carries its own job (SchedulerBenchmarkConfig, TokenPathBenchmarkConfig).
BenchmarkSwitcher.FromAssembly(typeof(SchedulerBenchmarks).Assembly).Run(args);
