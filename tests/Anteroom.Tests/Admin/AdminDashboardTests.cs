using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Admin;
using Microsoft.Extensions.DependencyInjection;

namespace Anteroom.Tests.Admin;

/// <summary>The operator dashboard through HTTP: its page, its live event stream and its metrics, on the real gateway.</summary>
public sealed class AdminDashboardTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    private static Task<TestGateway> StartAsync() => TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

    private static Task<SseStream> OpenEventsAsync(HttpClient client, CancellationToken cancellationToken) =>
        SseStream.OpenAsync(client, new HttpRequestMessage(HttpMethod.Get, "admin/events"), cancellationToken);

    /// <summary>Reads snapshots until one satisfies <paramref name="condition"/>.</summary>
    private static async Task<JsonElement> SnapshotWhereAsync(SseStream events, Func<JsonElement, bool> condition, CancellationToken cancellationToken)
    {
        while (await events.NextAsync(cancellationToken) is { } next)
        {
            Assert.Equal("snapshot", next.Type);
            if (condition(next.Data))
            {
                return next.Data;
            }
        }

        throw new InvalidOperationException("The event stream ended.");
    }

    private static IEnumerable<string> Ids(JsonElement snapshot, string list) =>
        snapshot.GetProperty(list).EnumerateArray().Select(r => r.GetProperty("request_id").GetString()!);

    [Fact]
    public async Task Events_AreForAdminsOnly()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var user = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));

        using var withUserKey = await user.GetAsync("admin/events", HttpCompletionOption.ResponseHeadersRead, ct);
        using var asBrowser = await gateway.Client("browser").GetAsync("admin/events", HttpCompletionOption.ResponseHeadersRead, ct);

        Assert.Equal(HttpStatusCode.Forbidden, withUserKey.StatusCode);
        Assert.Equal("admin_only", JsonDocument.Parse(await withUserKey.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, asBrowser.StatusCode);
    }

    [Fact]
    public async Task Events_ShowAWaitingRequestWithItsOwner_AndNoLongerOnceAnAdminCancelsIt()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        gateway.Simulator("gpu").Hold();
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("ops", admin: true));
        using var running = await SseStream.ChatAsync(gateway.KeyClient(await gateway.CreateKeyAsync("alice")), new { message = "runs" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(gateway.KeyClient(await gateway.CreateKeyAsync("bob")), new { message = "waits" }, ct);
        await waiting.ReadUntilAsync(ct, "queued");
        using var events = await OpenEventsAsync(admin, ct);

        var seen = await SnapshotWhereAsync(events, s => Ids(s, "queue").Contains(waiting.RequestId), ct);
        using var cancelled = await admin.DeleteAsync($"queue/requests/{waiting.RequestId}", ct);
        var after = await SnapshotWhereAsync(events, s => !Ids(s, "queue").Contains(waiting.RequestId), ct);

        Assert.StartsWith("text/event-stream", events.Response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var row = seen.GetProperty("queue").EnumerateArray().Single(r => r.GetProperty("request_id").GetString() == waiting.RequestId);
        Assert.Equal(("bob", "default", "llama3.1:8b", 1), (row.GetProperty("user").GetString(), row.GetProperty("tier").GetString(),
            row.GetProperty("model").GetString(), row.GetProperty("position").GetInt32()));
        Assert.Equal([running.RequestId], Ids(seen, "active"));
        Assert.Equal((1, 1), (seen.GetProperty("waiting").GetInt32(), seen.GetProperty("running").GetInt32()));
        Assert.Equal(("gpu", 1, 1), seen.GetProperty("backends").EnumerateArray()
            .Select(b => (b.GetProperty("name").GetString(), b.GetProperty("slots").GetInt32(), b.GetProperty("running").GetInt32())).Single());
        Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
        Assert.Equal(0, after.GetProperty("waiting").GetInt32());
        Assert.Equal([running.RequestId], Ids(after, "active"));
        Assert.Equal("cancelled", (await waiting.ReadToEndAsync(ct))[^1].Type);
        gateway.Simulator("gpu").Release();
        Assert.Equal("done", (await running.ReadToEndAsync(ct))[^1].Type);
    }

    [Fact]
    public async Task Events_CarryTheLastMinuteOfMetrics_WithTheCurrentPointLast()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("ops", admin: true));
        using var events = await OpenEventsAsync(admin, ct);

        var first = (await events.NextAsync(ct))!;

        var metrics = first.Data.GetProperty("metrics");
        var points = metrics.GetProperty("points").EnumerateArray().ToList();
        Assert.Equal("snapshot", first.Type);
        Assert.Equal(GatewayMetrics.BucketSeconds, metrics.GetProperty("bucket_seconds").GetInt32());
        Assert.Equal(7, points.Count);
        Assert.False(points[^1].GetProperty("complete").GetBoolean());
        Assert.Equal(["gpu"], metrics.GetProperty("backends").EnumerateArray().Select(b => b.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Metrics_CountACompletedRequestsTokens_AndARefusal_InTheBucketsTheyHappenedIn()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("ops", admin: true));
        var alice = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));
        var recorded = gateway.Services.GetRequiredService<GatewayMetrics>();

        var before = DateTimeOffset.UtcNow;
        using var answer = await alice.PostAsJsonAsync("chat", new { message = "count my tokens" }, ct);
        int tokens = JsonDocument.Parse(await answer.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        using var refused = await alice.PostAsJsonAsync("chat", new { message = "hi", model = "no-such-model" }, ct);
        // The answer reaches the client a moment before the request's end is filed: wait for the filing itself.
        await WaitForMetricsAsync(recorded, buckets => buckets.Sum(b => b.Completed) == 1 && buckets.Sum(b => b.Refusals) == 1, ct);
        var after = DateTimeOffset.UtcNow;

        using var body = JsonDocument.Parse(await admin.GetStringAsync("admin/metrics?minutes=5", ct));
        var root = body.RootElement;
        var points = root.GetProperty("points").EnumerateArray().ToList();
        bool During(JsonElement point)
        {
            var at = point.GetProperty("at").GetDateTimeOffset();
            return at > before.AddSeconds(-GatewayMetrics.BucketSeconds) && at <= after;
        }

        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal(5 * 6 + 1, points.Count);
        Assert.True(tokens > 0);
        Assert.Equal(tokens, points.Sum(p => p.GetProperty("tokens").GetDouble()), 2);
        Assert.All(points.Where(p => p.GetProperty("tokens").GetDouble() > 0), p => Assert.True(During(p), $"tokens in the bucket at {p.GetProperty("at")}"));
        var completed = Assert.Single(points, p => p.GetProperty("completed").GetInt32() > 0);
        Assert.True(During(completed));
        Assert.Equal(1, completed.GetProperty("completed").GetInt32());
        var refusal = Assert.Single(points, p => p.GetProperty("refusals").GetInt32() > 0);
        Assert.True(During(refusal));
        Assert.Equal(1, refusal.GetProperty("refusals_by_code").GetProperty("model_not_found").GetInt32());
        Assert.True(refusal.GetProperty("refusals_per_minute").GetDouble() > 0);
        var gpu = Assert.Single(root.GetProperty("backends").EnumerateArray());
        Assert.Equal("gpu", gpu.GetProperty("name").GetString());
        Assert.True(gpu.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public async Task Metrics_GiveAnEvenTimeAxis_RefuseABadWindow_AndAreForAdminsOnly()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("ops", admin: true));

        using var hour = JsonDocument.Parse(await admin.GetStringAsync("admin/metrics", ct));
        using var tooLong = await admin.GetAsync("admin/metrics?minutes=61", ct);
        using var notANumber = await admin.GetAsync("admin/metrics?minutes=soon", ct);
        using var notAdmin = await gateway.Client("browser").GetAsync("admin/metrics", ct);

        var times = hour.RootElement.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("at").GetDateTimeOffset()).ToList();
        Assert.Equal(GatewayMetrics.HistoryBuckets + 1, times.Count);
        Assert.All(times.Zip(times.Skip(1)), pair => Assert.Equal(TimeSpan.FromSeconds(10), pair.Second - pair.First));
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, notANumber.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, notAdmin.StatusCode);
    }

    [Fact]
    public async Task AdminPage_IsServedToABrowser_WithItsScriptsAndHooks()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var browser = gateway.Client("browser");
        using var page = new HttpRequestMessage(HttpMethod.Get, "admin");
        page.Headers.Add("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

        using var response = await browser.SendAsync(page, ct);
        string html = await response.Content.ReadAsStringAsync(ct);
        using var script = await browser.GetAsync("admin.js", ct);
        using var chart = await browser.GetAsync("chart.js", ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        foreach (string hook in new[] { "admin-key-form", "admin-key-input", "waiting-table", "running-table", "backends-table", "chart-queue",
            "chart-wait", "chart-throughput", "chart-refusals", "usage-table", "live-indicator" })
        {
            Assert.Contains($"data-testid=\"{hook}\"", html, StringComparison.Ordinal);
        }

        Assert.Contains("<script type=\"module\" src=\"admin.js\">", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Contains("from './chart.js'", await script.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, chart.StatusCode);
    }

    /// <summary>Waits, on the metrics' own signal, until what they hold satisfies <paramref name="condition"/>.</summary>
    private static async Task WaitForMetricsAsync(GatewayMetrics metrics, Func<IReadOnlyList<MetricsBucket>, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            long version = metrics.Version;
            if (condition(metrics.Read(GatewayMetrics.HistoryBuckets + 1)))
            {
                return;
            }

            await metrics.WaitForChangeAsync(version, cancellationToken);
        }
    }
}
