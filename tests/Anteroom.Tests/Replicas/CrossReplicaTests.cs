using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Tests.Shared;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// A request admitted through one replica, reached through another: its status, its events from any id, its cancel,
/// its owner's list and limits, as a client behind a round-robin load balancer meets them.
/// </summary>
public sealed class CrossReplicaTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task AStreamLeftOnOneReplica_ResumesOnAnotherWithLastEventId_WithContinuousIdsAndTheWholeAnswer()
    {
        var ct = Within(TimeSpan.FromSeconds(30));
        var (first, second) = await TwoReplicasAsync(TestGateway.FastSimulator(outputTokens: 30));
        await using var _ = first;
        await using var __ = second;
        var server = first.Simulator("gpu");
        server.Hold();
        var stream = await SseStream.ChatAsync(first.Client("a"), new { message = "resume me elsewhere", reconnect_grace_ms = 30_000 }, ct);
        var seen = await stream.ReadUntilAsync(ct, "started");
        string id = stream.RequestId;
        stream.Dispose();

        using var request = new HttpRequestMessage(HttpMethod.Get, $"queue/requests/{id}/events");
        request.Headers.Add("Last-Event-ID", seen[^1].Id!.Value.ToString(CultureInfo.InvariantCulture));
        using var resumed = await SseStream.OpenAsync(second.Client("a"), request, ct);
        server.Release();
        var rest = await resumed.ReadToEndAsync(ct);

        Assert.Equal(id, resumed.RequestId);
        Assert.Equal(Enumerable.Range((int)seen[^1].Id!.Value + 1, rest.Count).Select(i => (long?)i), rest.Select(e => e.Id));
        Assert.Equal("done", rest[^1].Type);
        Assert.Equal(rest[^1].Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), rest.Count(e => e.Type == "token"));
        Assert.Equal(1, server.Stats.Completed);
    }

    [Fact]
    public async Task ACancelThroughOneReplica_StopsARequestRunningThroughAnother_UpstreamIncluded_WithinASecond()
    {
        var ct = Within(TimeSpan.FromSeconds(30));
        var (first, second) = await TwoReplicasAsync(TestGateway.SlowSimulator());
        await using var _ = first;
        await using var __ = second;
        using var stream = await SseStream.ChatAsync(first.Client("a"), new { message = "a long answer please" }, ct);
        await stream.ReadUntilAsync(ct, "token");

        var clock = Stopwatch.StartNew();
        using var deleted = await second.Client("a").DeleteAsync($"queue/requests/{stream.RequestId}", ct);
        var events = await stream.ReadToEndAsync(ct);
        await first.Simulator("gpu").WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
        var stoppedAfter = clock.Elapsed;

        Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        Assert.Equal(("cancelled", "cancelled_by_user"), (events[^1].Type, events[^1].Text("reason")));
        Assert.True(stoppedAfter < TimeSpan.FromSeconds(1), $"The backend stopped {stoppedAfter.TotalMilliseconds:0} ms after the cancel.");
        using var again = await second.Client("a").DeleteAsync($"queue/requests/{stream.RequestId}", ct);
        await WaitForEndingAsync(second, stream.RequestId, ct);
        using var ended = await second.Client("a").DeleteAsync($"queue/requests/{stream.RequestId}", ct);
        Assert.Equal(HttpStatusCode.Conflict, ended.StatusCode);
    }

    [Fact]
    public async Task TheStatusOfARequestAdmittedElsewhere_ShowsItsGlobalPlace_ThenHowItEnded_ToItsOwnerOnly()
    {
        var ct = Within(TimeSpan.FromSeconds(30));
        var (first, second) = await TwoReplicasAsync(TestGateway.FastSimulator());
        await using var _ = first;
        await using var __ = second;
        first.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(first.Client("b"), new { message = "one" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(first.Client("a"), new { message = "two" }, ct);
        await waiting.NextAsync(ct);

        using var whileWaiting = JsonDocument.Parse(await second.Client("a").GetStringAsync($"queue/requests/{waiting.RequestId}", ct));
        using var byAnother = await second.Client("c").GetAsync($"queue/requests/{waiting.RequestId}", ct);
        using var mine = JsonDocument.Parse(await second.Client("a").GetStringAsync("queue/requests", ct));
        first.Simulator("gpu").Release();
        await waiting.ReadToEndAsync(ct);
        var afterwards = await WaitForEndingAsync(second, waiting.RequestId, ct);

        Assert.Equal(("waiting", 1), (whileWaiting.RootElement.GetProperty("state").GetString(), whileWaiting.RootElement.GetProperty("position").GetInt32()));
        Assert.Equal(HttpStatusCode.NotFound, byAnother.StatusCode);
        Assert.Equal([waiting.RequestId], mine.RootElement.GetProperty("requests").EnumerateArray().Select(r => r.GetProperty("request_id").GetString()));
        Assert.Equal("completed", afterwards.GetProperty("state").GetString());
        Assert.Equal("gpu", afterwards.GetProperty("backend").GetString());
        Assert.Equal(1, afterwards.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task RequestsPerMinute_AreCountedAcrossReplicas()
    {
        var ct = Within(TimeSpan.FromSeconds(30));
        var (first, second) = await TwoReplicasAsync(TestGateway.FastSimulator(), new() { ["Anteroom:Tiers:default:RequestsPerMinute"] = "2" });
        await using var _ = first;
        await using var __ = second;
        var chat = new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } };

        using var one = await first.Client("a").PostAsJsonAsync("v1/chat/completions", chat, ct);
        using var two = await second.Client("a").PostAsJsonAsync("v1/chat/completions", chat, ct);
        using var three = await first.Client("a").PostAsJsonAsync("v1/chat/completions", chat, ct);

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (one.StatusCode, two.StatusCode));
        Assert.Equal(HttpStatusCode.TooManyRequests, three.StatusCode);
        using var error = JsonDocument.Parse(await three.Content.ReadAsStringAsync(ct));
        Assert.Equal("requests_per_minute_limit", error.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    private static CancellationToken Within(TimeSpan limit) => new CancellationTokenSource(limit).Token;

    /// <summary>Polls the status through a replica until the ending its owner recorded is there.</summary>
    private static async Task<JsonElement> WaitForEndingAsync(TestGateway gateway, string id, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var status = JsonDocument.Parse(await gateway.Client("a").GetStringAsync($"queue/requests/{id}", cancellationToken));
            if (status.RootElement.GetProperty("state").GetString() is not ("waiting" or "running"))
            {
                return status.RootElement.Clone();
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>Two replicas on one Redis prefix and one simulated backend of one slot.</summary>
    private async Task<(TestGateway First, TestGateway Second)> TwoReplicasAsync(Simulator.SimulatorOptions simulator, Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Anteroom:Redis:Configuration"] = redis.Server.Configuration,
            ["Anteroom:Redis:Prefix"] = RedisFixture.NewPrefix(),
        };
        foreach (var (key, value) in extra ?? [])
        {
            settings[key] = value;
        }

        var first = await TestGateway.StartAsync([new TestBackend("gpu", simulator, Slots: 1)], settings);
        var second = await TestGateway.StartAsync(
            [new TestBackend("gpu", simulator, Slots: 1)],
            new Dictionary<string, string?>(settings) { ["Anteroom:Backends:0:Url"] = first.Simulator("gpu").BaseAddress.ToString() });
        return (first, second);
    }
}
