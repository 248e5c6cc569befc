using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Requests;
using Anteroom.Scheduling;

namespace Anteroom.Admin;

/// <summary>
/// <c>GET /admin/events</c>: the dashboard's live feed, as Server-Sent Events. A <c>snapshot</c> event (see
/// <see cref="AdminSnapshot"/>) goes out at once, then on every queue change and every recorded request end or
/// refusal — coalesced to at most one per <see cref="MinimumInterval"/> — and at least every
/// <see cref="IdleInterval"/> (every <see cref="BusyInterval"/> while something runs, so tokens so far move).
/// </summary>
internal static class AdminEvents
{
    /// <summary>The least time between two snapshots: a burst of changes costs one snapshot per interval.</summary>
    public static readonly TimeSpan MinimumInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>The most time between two snapshots when nothing runs; the page takes longer silence as a lost connection.</summary>
    public static readonly TimeSpan IdleInterval = TimeSpan.FromSeconds(5);

    /// <summary>The most time between two snapshots while something runs: running requests' tokens change without a queue change.</summary>
    public static readonly TimeSpan BusyInterval = TimeSpan.FromSeconds(1);

    /// <summary>Waiting rows per model in a snapshot: enough to see who waits, bounded however long the queue gets.</summary>
    public const int WaitingRowsPerModel = 200;

    // The comment flushes the headers at once, so the page's EventSource opens (and shows "live") before the first
    // snapshot is built; "retry" is how long a browser waits before reconnecting by itself.
    private static readonly byte[] Opening = ": anteroom admin events\nretry: 3000\n\n"u8.ToArray();
    private static readonly byte[] EventPrefix = "event: snapshot\ndata: "u8.ToArray();
    private static readonly byte[] EventSuffix = "\n\n"u8.ToArray();

    public static async Task StreamAsync(
        HttpContext context, IRequestQueue queue, IRequestRegistry registry, BackendsView backends, GatewayMetrics metrics,
        IHostApplicationLifetime lifetime, TimeProvider time)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";

        // Ends when the page goes away, and when the server stops: an open dashboard must not hold up a shutdown.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var cancellationToken = ending.Token;
        var writer = response.BodyWriter;
        try
        {
            await response.StartAsync(cancellationToken);
            writer.Write(Opening);
            var lastSent = time.GetUtcNow();
            while (true)
            {
                // Versions are read before the snapshot is built: a change after this read wakes the wait below.
                long queueSeen = queue.ChangeVersion;
                long metricsSeen = metrics.Version;
                var snapshot = await AdminViews.SnapshotAsync(queue, registry, backends, metrics, WaitingRowsPerModel, cancellationToken);
                writer.Write(EventPrefix);
                using (var json = new Utf8JsonWriter(writer))
                {
                    // One line of JSON (no indentation): an SSE data line may not contain a newline.
                    JsonSerializer.Serialize(json, snapshot, AdminJson.Default.AdminSnapshot);
                }

                writer.Write(EventSuffix);
                if (!await FlushAsync(writer, cancellationToken))
                {
                    return;
                }

                lastSent = time.GetUtcNow();
                await WaitForNewsAsync(queue, queueSeen, metrics, metricsSeen, snapshot.Running > 0 ? BusyInterval : IdleInterval, time, cancellationToken);
                var sinceLast = time.GetUtcNow() - lastSent;
                if (sinceLast < MinimumInterval)
                {
                    await Task.Delay(MinimumInterval - sinceLast, time, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The page left or the server is stopping: nothing to tell anyone.
        }
    }

    /// <summary>Waits for a queue change, a recorded request, or <paramref name="longest"/>, whichever comes first.</summary>
    private static async Task WaitForNewsAsync(
        IRequestQueue queue, long queueSeen, GatewayMetrics metrics, long metricsSeen, TimeSpan longest, TimeProvider time, CancellationToken cancellationToken)
    {
        // The losers are cancelled on the way out so that a quiet hour does not pile up waiters on the change signals.
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await Task.WhenAny(
            queue.WaitForChangeAsync(queueSeen, wake.Token).AsTask(),
            metrics.WaitForChangeAsync(metricsSeen, wake.Token),
            Task.Delay(longest, time, wake.Token));
        await wake.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>Sends what was written; false once the client has gone.</summary>
    private static async ValueTask<bool> FlushAsync(PipeWriter writer, CancellationToken cancellationToken)
    {
        var result = await writer.FlushAsync(cancellationToken);
        return !result.IsCompleted && !result.IsCanceled;
    }
}
