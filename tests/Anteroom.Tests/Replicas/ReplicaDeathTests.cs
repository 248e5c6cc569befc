using System.Diagnostics;
using System.Globalization;
using System.Net;
using Anteroom.Identity;
using Anteroom.Tests.Shared;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// A replica killed (<c>kill -9</c>) under load, among three gateway processes on one Redis: its slots come back,
/// its waiting chats are taken over by the replicas their clients reconnect to, its running ones end with
/// <c>replica_lost</c>, and nobody else notices.
/// </summary>
public sealed class ReplicaDeathTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private const int LeaseSeconds = 2;

    [Fact]
    public async Task AReplicaKilledUnderLoad_GivesBackItsSlots_ItsWaitingChatsResumeElsewhere_AndNobodyElseIsDisturbed()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var ct = timeout.Token;
        var simulatorOptions = TestGateway.FastSimulator(outputTokens: 20);
        simulatorOptions.Parallel = 2;
        await using var simulator = await Simulator.SimulatedModelServer.StartAsync(simulatorOptions);
        var settings = new Dictionary<string, string?>
        {
            ["Anteroom:Redis:Configuration"] = redis.Server.Configuration,
            ["Anteroom:Redis:Prefix"] = RedisFixture.NewPrefix(),
            ["Anteroom:Redis:LeaseSeconds"] = LeaseSeconds.ToString(CultureInfo.InvariantCulture),
            // A reader following a request from another replica looks at the replica running it every quiet interval.
            ["Anteroom:Stream:KeepAliveSeconds"] = "0.5",
        };
        foreach (var (key, value) in GatewayProcess.Backend(0, "gpu", simulator.BaseAddress, 2, "ollama", "llama3.1:8b"))
        {
            settings[key] = value;
        }

        await using var victim = await GatewayProcess.StartAsync(settings);
        await using var second = await GatewayProcess.StartAsync(settings);
        await using var third = await GatewayProcess.StartAsync(settings);

        simulator.Hold();
        // On the replica to be killed: two chats running (holding both slots), then two waiting with a grace.
        var running = new List<(string Cookie, SseStream Stream, long LastId)>();
        for (int i = 0; i < 2; i++)
        {
            string cookie = await NewUserAsync(victim, ct);
            var stream = await SseStream.ChatAsync(victim.Client(cookie), new { message = $"running {i}", reconnect_grace_ms = 30_000 }, ct);
            running.Add((cookie, stream, (await stream.ReadUntilAsync(ct, "started"))[^1].Id!.Value));
        }

        var waiting = new List<(string Cookie, SseStream Stream, long LastId)>();
        for (int i = 0; i < 2; i++)
        {
            string cookie = await NewUserAsync(victim, ct);
            var stream = await SseStream.ChatAsync(victim.Client(cookie), new { message = $"waiting {i}", reconnect_grace_ms = 30_000 }, ct);
            waiting.Add((cookie, stream, (await stream.NextAsync(ct))!.Id!.Value));
        }

        // Elsewhere: one chat through each other replica, behind them in the queue.
        var bystanders = new List<SseStream>();
        foreach (var replica in new[] { second, third })
        {
            var stream = await SseStream.ChatAsync(replica.Client(await NewUserAsync(replica, ct)), new { message = "bystander" }, ct);
            Assert.Equal("queued", (await stream.NextAsync(ct))!.Type);
            bystanders.Add(stream);
        }

        await victim.KillAsync();
        var sinceKill = Stopwatch.StartNew();
        simulator.Release();
        foreach (var (_, stream, _) in running.Concat(waiting))
        {
            stream.Dispose();
        }

        // The bystanders start once the dead replica's slots come back, and finish as if nothing happened.
        var bystanderStarts = bystanders.Select(async stream =>
        {
            var events = await stream.ReadUntilAsync(ct, "started");
            var startedAfter = sinceKill.Elapsed;
            events.AddRange(await stream.ReadToEndAsync(ct));
            return (Events: events, StartedAfter: startedAfter);
        }).ToList();

        // Each of the dead replica's clients reconnects through another replica with the last id it saw.
        var resumedWaiting = waiting.Select((w, i) => FollowAcrossReconnectsAsync(i == 0 ? second : third, w.Cookie, w.Stream.RequestId, w.LastId, ct)).ToList();
        var resumedRunning = running.Select((r, i) => FollowAcrossReconnectsAsync(i == 0 ? third : second, r.Cookie, r.Stream.RequestId, r.LastId, ct)).ToList();

        var bystanderResults = await Task.WhenAll(bystanderStarts);
        var waitingResults = await Task.WhenAll(resumedWaiting);
        var runningResults = await Task.WhenAll(resumedRunning);

        foreach (var (events, startedAfter) in bystanderResults)
        {
            Assert.Equal("done", events[^1].Type);
            Assert.True(startedAfter < TimeSpan.FromSeconds(2 * LeaseSeconds), $"A bystander started {startedAfter.TotalSeconds:0.0} s after the kill.");
        }

        for (int i = 0; i < waiting.Count; i++)
        {
            var rest = waitingResults[i];
            // Continuous ids from the last one seen, a run on the replica that took it over, and the whole answer.
            Assert.Equal(Enumerable.Range((int)waiting[i].LastId + 1, rest.Count).Select(id => (long?)id), rest.Select(e => e.Id));
            Assert.Single(rest, e => e.Type == "started");
            Assert.Equal("done", rest[^1].Type);
            Assert.Equal(rest[^1].Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), rest.Count(e => e.Type == "token"));
        }

        foreach (var rest in runningResults)
        {
            Assert.Equal(("error", "replica_lost"), (rest[^1].Type, rest[^1].Text("code")));
            Assert.Single(rest, e => e.Type is "done" or "error" or "cancelled");
        }

        // Their status, through any replica, says they failed, not that they still run.
        foreach (var (cookie, stream, _) in running)
        {
            using var status = System.Text.Json.JsonDocument.Parse(await third.Client(cookie).GetStringAsync($"queue/requests/{stream.RequestId}", ct));
            Assert.Equal("failed", status.RootElement.GetProperty("state").GetString());
        }

        // Every request ran on the model server at most twice at once, and the ones the dead replica left were stopped.
        Assert.True(simulator.Stats.PeakActive <= 2, simulator.Stats.ToString());
        await simulator.WaitUntilAsync(s => s.Active == 0, ct);
        Assert.Equal(4, simulator.Stats.Completed);
    }

    /// <summary>
    /// Follows a request's events through <paramref name="replica"/> from <paramref name="lastId"/> until its end, reconnecting
    /// with the last id seen whenever the stream drops, as the chat page does; returns the events after <paramref name="lastId"/>.
    /// </summary>
    private static async Task<List<SseEvent>> FollowAcrossReconnectsAsync(GatewayProcess replica, string cookie, string id, long lastId, CancellationToken ct)
    {
        var events = new List<SseEvent>();
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"queue/requests/{id}/events");
            request.Headers.Add("Last-Event-ID", (events.Count > 0 ? events[^1].Id!.Value : lastId).ToString(CultureInfo.InvariantCulture));
            try
            {
                using var stream = await SseStream.OpenAsync(replica.Client(cookie), request, ct);
                while (await stream.NextAsync(ct) is { } next)
                {
                    events.Add(next);
                    if (next.Type is "done" or "error" or "cancelled")
                    {
                        return events;
                    }
                }
            }
            catch (Exception e) when (e is HttpRequestException { StatusCode: null } or IOException && !ct.IsCancellationRequested)
            {
                // Dropped (the replica it was followed through found the one running it gone): reconnect.
            }
        }
    }

    private static async Task<string> NewUserAsync(GatewayProcess replica, CancellationToken ct)
    {
        using var issued = await replica.Client().GetAsync("session", ct);
        Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
        return issued.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(BrowserSessions.CookieName + "=", StringComparison.Ordinal)).Split(';')[0];
    }
}
