using Anteroom.Admin;
using Anteroom.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Admin;

/// <summary>The hour of ten-second buckets behind the dashboard's charts, on a clock the tests move by hand.</summary>
public sealed class GatewayMetricsTests
{
    // On a bucket boundary, so offsets below read as "seconds into the first bucket".
    private static readonly DateTimeOffset Start = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static (GatewayMetrics Metrics, FakeTimeProvider Time) Create()
    {
        var time = new FakeTimeProvider(Start);
        return (new GatewayMetrics(time), time);
    }

    private static RequestEnd Ended(
        double arrived, double? dispatched, double? generatingFrom, double ended, int tokens = 0, string? backend = "gpu", bool completed = true) => new(
        Start.AddSeconds(arrived), dispatched is { } d ? Start.AddSeconds(d) : null, generatingFrom is { } g ? Start.AddSeconds(g) : null,
        Start.AddSeconds(ended), tokens, backend, completed);

    [Fact]
    public void Read_GivesEveryBucketOfTheWindow_OldestFirst_WithTimeBeforeStartAsZeros()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(25));

        var buckets = metrics.Read(7);

        Assert.Equal(7, buckets.Count);
        Assert.Equal(Start.AddSeconds(-40), buckets[0].At);
        Assert.Equal(Start.AddSeconds(20), buckets[^1].At);
        Assert.All(buckets.Zip(buckets.Skip(1)), pair => Assert.Equal(TimeSpan.FromSeconds(GatewayMetrics.BucketSeconds), pair.Second.At - pair.First.At));
        Assert.All(buckets.Take(buckets.Count - 1), b => Assert.True(b.Complete));
        Assert.False(buckets[^1].Complete);
        Assert.Equal(5, buckets[^1].Seconds);
        Assert.All(buckets, b => Assert.Equal((0, 0, 0.0, 0, 0), (b.QueueLengthMax, b.WaitsMs.Count, b.Tokens, b.Completed, b.Refusals)));
    }

    [Fact]
    public void QueueLength_KeepsTheHighestAndLastSample_AndHoldsThroughQuietBuckets()
    {
        var (metrics, time) = Create();
        metrics.SampleQueue(3);
        metrics.SampleQueue(5);
        metrics.SampleQueue(2);
        time.Advance(TimeSpan.FromSeconds(31));
        metrics.SampleQueue(4);

        var buckets = metrics.Read(4);

        Assert.Equal([(5, 2), (2, 2), (2, 2), (4, 4)], buckets.Select(b => (b.QueueLengthMax, b.QueueLengthLast)));
    }

    [Fact]
    public void Waits_AreFiledUnderTheBucketTheRequestWasDispatchedIn_EvenWhenItEndsLater()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(25));

        metrics.Record(Ended(arrived: 0, dispatched: 12, generatingFrom: 12.5, ended: 24));
        metrics.Record(Ended(arrived: 1, dispatched: 2, generatingFrom: null, ended: 3, completed: false));

        var buckets = metrics.Read(3);
        Assert.Equal([1000.0], buckets[0].WaitsMs);
        Assert.Equal([12000.0], buckets[1].WaitsMs);
        Assert.Empty(buckets[2].WaitsMs);
        // Completions count where they ended; a cancelled request waited but did not complete.
        Assert.Equal([0, 0, 1], buckets.Select(b => b.Completed));
    }

    [Fact]
    public void ARequestThatNeverGotASlot_AddsNoWait()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(5));

        metrics.Record(Ended(arrived: 0, dispatched: null, generatingFrom: null, ended: 4, backend: null, completed: false));

        var bucket = metrics.Read(1)[0];
        Assert.Equal((0, 0, 0.0), (bucket.WaitsMs.Count, bucket.Completed, bucket.Tokens));
    }

    [Fact]
    public void Tokens_AreSpreadOverTheTimeTheyWereGenerated_AndCountPerBackendOverTheLastMinute()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(25));

        metrics.Record(Ended(arrived: 0, dispatched: 0, generatingFrom: 5, ended: 25, tokens: 200, backend: "gpu-a"));
        metrics.Record(Ended(arrived: 20, dispatched: 20, generatingFrom: 21, ended: 21, tokens: 10, backend: "gpu-b"));

        var buckets = metrics.Read(3);
        Assert.Equal([50.0, 100.0, 60.0], buckets.Select(b => Math.Round(b.Tokens, 6)));
        var perBackend = metrics.BackendTokensPerSecond();
        // 25 s since start: the minute so far.
        Assert.Equal(200.0 / 25, perBackend["gpu-a"], 6);
        Assert.Equal(10.0 / 25, perBackend["gpu-b"], 6);
    }

    [Fact]
    public void BackendThroughput_LooksBackOneMinuteOnly()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(5));
        metrics.Record(Ended(arrived: 0, dispatched: 0, generatingFrom: 1, ended: 5, tokens: 100, backend: "gpu"));
        time.Advance(TimeSpan.FromSeconds(60));
        metrics.Record(Ended(arrived: 60, dispatched: 60, generatingFrom: 61, ended: 65, tokens: 30, backend: "gpu"));

        // Now 65 s: the window is the current bucket (60–70) and the five before it (10–60), 55 s so far.
        Assert.Equal(30.0 / 55, metrics.BackendTokensPerSecond()["gpu"], 6);
    }

    [Fact]
    public void Refusals_CountInTheBucketTheyHappenedIn_ByCode()
    {
        var (metrics, time) = Create();
        metrics.Refused("queue_full");
        time.Advance(TimeSpan.FromSeconds(10));
        metrics.Refused("queue_full");
        metrics.Refused("model_not_found");

        var buckets = metrics.Read(2);

        Assert.Equal([1, 2], buckets.Select(b => b.Refusals));
        Assert.Equal(new Dictionary<string, int> { ["queue_full"] = 1, ["model_not_found"] = 1 }, buckets[1].RefusalsByCode);
    }

    [Fact]
    public void AnHourLater_OldBucketsAreGone_AndLateReportsForThemAreDropped()
    {
        var (metrics, time) = Create();
        metrics.Refused("queue_full");
        metrics.SampleQueue(7);
        time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(10));

        metrics.Record(Ended(arrived: 0, dispatched: 1, generatingFrom: 1, ended: 2, tokens: 50));

        var hour = metrics.Read(GatewayMetrics.HistoryBuckets + 1);
        Assert.Equal(GatewayMetrics.HistoryBuckets + 1, hour.Count);
        Assert.All(hour, b => Assert.Equal((0, 0, 0.0), (b.Refusals, b.WaitsMs.Count, b.Tokens)));
        // The queue still held 7 the whole time: every bucket since says so.
        Assert.All(hour, b => Assert.Equal(7, b.QueueLengthMax));
    }

    [Fact]
    public void ABusyBucket_KeepsABoundedSampleOfItsWaits()
    {
        var (metrics, time) = Create();
        time.Advance(TimeSpan.FromSeconds(9));

        for (int i = 0; i < 1000; i++)
        {
            metrics.Record(Ended(arrived: 0, dispatched: i / 1000.0 * 8, generatingFrom: null, ended: 9));
        }

        var bucket = metrics.Read(1)[0];
        Assert.Equal(GatewayMetrics.WaitSamplesPerBucket, bucket.WaitsMs.Count);
        Assert.All(bucket.WaitsMs, w => Assert.InRange(w, 0, 8000));
        Assert.Equal(1000, bucket.Completed);
    }

    [Fact]
    public async Task Recording_WakesWhoeverWaitsForNews_AndQueueSamplesDoNot()
    {
        var (metrics, _) = Create();
        long seen = metrics.Version;
        var news = metrics.WaitForChangeAsync(seen);

        metrics.SampleQueue(3);
        Assert.False(news.IsCompleted);
        metrics.Refused("queue_full");

        await news;
        Assert.True(metrics.Version > seen);
        Assert.True(metrics.WaitForChangeAsync(seen).IsCompleted);
    }

    [Fact]
    public async Task Points_GivePercentilesAndRates_OverTheSecondsEachBucketCovers()
    {
        var (metrics, time) = Create();
        var queue = RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], time);
        using var disposable = (IDisposable)queue;
        time.Advance(TimeSpan.FromSeconds(14));
        for (int i = 1; i <= 20; i++)
        {
            // Waits of 100, 200, … 2000 ms, all dispatched in the first bucket.
            metrics.Record(Ended(arrived: 0, dispatched: i / 10.0, generatingFrom: 9, ended: 9, tokens: 5));
        }

        metrics.Refused("queue_full");
        metrics.Refused("queue_full");

        var view = AdminViews.Metrics(metrics, 2, await queue.GetSnapshotAsync());

        var (first, current) = (view.Points[0], view.Points[1]);
        Assert.Equal((1000L, 1900L, 20), (first.WaitP50Ms, first.WaitP95Ms, first.Waits));
        Assert.Equal((100.0, 10.0, 20), (first.Tokens, first.TokensPerSecond, first.Completed));
        // The current bucket is 4 s old: two refusals in 4 s is 30 a minute.
        Assert.Equal((false, 2, 30.0), (current.Complete, current.Refusals, current.RefusalsPerMinute));
        Assert.Equal((0L, 0L, 0), (current.WaitP50Ms, current.WaitP95Ms, current.Waits));
        Assert.Equal([("gpu", Math.Round(100.0 / 14, 2))], view.Backends.Select(b => (b.Name, b.TokensPerSecond)));
    }
}
