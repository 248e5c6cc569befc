using Anteroom.Gateway;
using Anteroom.Identity;
using Anteroom.Native;
using Anteroom.Requests;
using Anteroom.Scheduling;

namespace Anteroom.Admin;

/// <summary>
/// The operator's views of the gateway, built once here for both the admin API's answers and the dashboard's
/// event stream, so the two always agree.
/// </summary>
internal static class AdminViews
{
    /// <summary>Every waiting (up to <paramref name="limitPerModel"/> per model) and running request, with owners.</summary>
    public static async Task<AdminQueue> QueueAsync(
        IRequestQueue queue, SchedulerSnapshot snapshot, IRequestRegistry registry, int limitPerModel = int.MaxValue, CancellationToken cancellationToken = default)
    {
        var now = snapshot.TakenAt;
        var waiting = new List<AdminWaiting>();
        foreach (var w in await queue.GetWaitingAsync(limitPerModel, cancellationToken))
        {
            var caller = (await registry.GetAsync(w.Id, cancellationToken))?.Caller;
            waiting.Add(new AdminWaiting(
                w.Id, caller?.Name ?? Caller.NameOf(w.Owner), w.Owner, caller?.TierName ?? "", w.Model, w.Position,
                GenerationRunner.Milliseconds(now - w.ArrivedAt)));
        }

        var running = new List<AdminRunning>();
        foreach (var r in await queue.GetRunningAsync(cancellationToken))
        {
            var request = await registry.GetAsync(r.Id, cancellationToken);
            running.Add(new AdminRunning(
                r.Id, request?.Caller.Name ?? Caller.NameOf(r.Owner), r.Owner, request?.Caller.TierName ?? "",
                r.Model, r.Backend, GenerationRunner.Milliseconds(now - r.StartedAt), request?.GeneratedTokens ?? 0));
        }

        return new AdminQueue(snapshot.Waiting, snapshot.Running, NativeEndpoints.ModelStatuses(snapshot), waiting, running);
    }

    /// <summary>Each backend's slots, health, models and use.</summary>
    public static AdminBackends Backends(SchedulerSnapshot snapshot, BackendsView backends) =>
        new(NativeEndpoints.BackendStatuses(snapshot, backends));

    /// <summary>The newest <paramref name="buckets"/> metrics points, and every backend's throughput over the last minute.</summary>
    public static AdminMetrics Metrics(GatewayMetrics metrics, int buckets, SchedulerSnapshot snapshot)
    {
        var points = metrics.Read(buckets).Select(Point).ToList();
        var throughput = metrics.BackendTokensPerSecond();
        // Every configured backend, idle ones at zero, then any that no longer exists but produced in the minute.
        var names = snapshot.Backends.Select(b => b.Name).Concat(throughput.Keys).Distinct(StringComparer.Ordinal);
        return new AdminMetrics(
            GatewayMetrics.BucketSeconds,
            points,
            [.. names.Select(name => new BackendThroughput(name, Math.Round(throughput.GetValueOrDefault(name), 2)))]);
    }

    /// <summary>The dashboard's pushed state: queue, backends and the last minute of metrics, from one scheduler snapshot.</summary>
    public static async Task<AdminSnapshot> SnapshotAsync(
        IRequestQueue requestQueue, IRequestRegistry registry, BackendsView backends, GatewayMetrics metrics, int waitingLimitPerModel,
        CancellationToken cancellationToken)
    {
        var snapshot = await requestQueue.GetSnapshotAsync(cancellationToken);
        var queue = await QueueAsync(requestQueue, snapshot, registry, waitingLimitPerModel, cancellationToken);
        return new AdminSnapshot(
            snapshot.TakenAt, queue.Waiting, queue.Running, queue.Models, queue.Queue, queue.Active,
            Backends(snapshot, backends).Backends,
            // A minute, not just the newest point: waits and tokens are filed when requests end, into the buckets
            // they belong to, so the last few buckets can still change after the page first saw them.
            Metrics(metrics, (60 / GatewayMetrics.BucketSeconds) + 1, snapshot));
    }

    private static MetricsPoint Point(MetricsBucket bucket)
    {
        var waits = bucket.WaitsMs;
        return new MetricsPoint(
            bucket.At,
            bucket.Complete,
            bucket.QueueLengthMax,
            bucket.QueueLengthLast,
            Percentile(waits, 0.50),
            Percentile(waits, 0.95),
            waits.Count,
            Math.Round(bucket.Tokens, 3),
            Math.Round(bucket.Tokens / bucket.Seconds, 2),
            bucket.Refusals,
            Math.Round(bucket.Refusals * 60 / bucket.Seconds, 2),
            bucket.RefusalsByCode,
            bucket.Completed);
    }

    /// <summary>Nearest rank, as the scheduler's own wait statistics use; 0 for no samples.</summary>
    private static long Percentile(IReadOnlyList<double> sorted, double quantile) =>
        sorted.Count == 0 ? 0 : (long)Math.Round(sorted[(int)Math.Ceiling(quantile * sorted.Count) - 1]);
}
