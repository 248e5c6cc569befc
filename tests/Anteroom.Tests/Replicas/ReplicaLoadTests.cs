using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Anteroom.Identity;
using Anteroom.Simulator;
using Anteroom.Tests.Shared;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// Three gateway processes sharing one Redis in front of one model server, under load: the backend never runs more
/// than its slots, every request ends exactly once, the order is fair whichever replica a request came through, and
/// a Redis restart in the middle loses nothing that was admitted.
/// </summary>
public sealed class ReplicaLoadTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    /// <summary>How many requests a replica may refuse after Redis is back before the test gives up on it.</summary>
    private const int MaxAttempts = 200;

    private static readonly string[] Terminal = ["done", "error", "cancelled"];

    private static readonly object OpenAIChat = new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } };

    [Fact]
    public async Task TwoHundredRequestsOfTenUsersRoundRobinOverThreeReplicas_NeverRunMoreThanTheSlots_AndEachEndsOnceWithItsWholeAnswer()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(50));
        var ct = timeout.Token;
        await using var simulator = await SimulatedModelServer.StartAsync(Simulator());
        await using var replicas = await ThreeReplicas.StartAsync(Settings(simulator, slots: 2));
        var users = await replicas.SessionsAsync(10, ct);

        // Held until both slots are taken, so the backend is seen running two at once whatever the machine's load
        // (a generation takes milliseconds, and on a busy machine one could end before the next begins).
        simulator.Hold();
        var chats = Enumerable.Range(0, 200)
            .Select(i => Chat.Start(replicas[i % 3].Client(users[i % 10]), $"question {i}", ct))
            .ToList();
        await simulator.WaitUntilAsync(s => s.Active == 2, ct);
        simulator.Release();
        var ended = await Task.WhenAll(chats.Select(c => c.Events));

        Assert.All(ended, events =>
        {
            var done = EndsOnce(events);
            Assert.Equal("done", done.Type);
            var tokens = events.Where(e => e.Type == "token").ToList();
            Assert.NotEmpty(tokens);
            Assert.Equal(done.Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), tokens.Count);
        });
        var stats = simulator.Stats;
        // The model server could run four at once: only the replicas' shared two slots keep it to two.
        Assert.True(stats.PeakActive == 2, stats.ToString());
        // Each generation ran once: none was lost, and none was sent to the backend twice.
        Assert.Equal(200, stats.Completed);
        Assert.Equal(0, stats.Cancelled + stats.Failed + stats.Rejected);
    }

    [Fact]
    public async Task OneUsersRequestAfterAnothersFloodOfTen_StartsAfterAtMostTwoOfTheFlood_ThoughEachCameThroughAnotherReplica()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(50));
        var ct = timeout.Token;
        var options = Simulator();
        options.RecordBodies = 100;
        await using var simulator = await SimulatedModelServer.StartAsync(options);
        await using var replicas = await ThreeReplicas.StartAsync(Settings(simulator, slots: 1));
        var users = await replicas.SessionsAsync(2, ct);

        // The first of the flood holds the one slot until the single request is queued, so the order of starts is
        // decided by the queue alone, not by which request happened to reach a replica first.
        simulator.Hold();
        var flood = Enumerable.Range(0, 10).Select(i => Chat.Start(replicas[0].Client(users[0]), $"flood {i}", ct)).ToList();
        await Task.WhenAll(flood.Select(c => c.First));
        await simulator.WaitUntilAsync(s => s.Active == 1, ct);
        var single = Chat.Start(replicas[1].Client(users[1]), "single", ct);
        var queued = await single.First;
        simulator.Release();
        var ended = await Task.WhenAll(flood.Append(single).Select(c => c.Events));

        Assert.All(ended, events => Assert.Equal("done", EndsOnce(events).Type));
        Assert.Equal("queued", queued.Type);
        Assert.InRange(queued.Int("position"), 1, 2);
        var starts = simulator.ReceivedBodies.Select(b => Encoding.UTF8.GetString(b.Body)).ToList();
        Assert.Equal(11, starts.Count);
        int before = starts.FindIndex(body => body.Contains("single", StringComparison.Ordinal));
        // First come, first served would start it eleventh, after the whole flood.
        Assert.InRange(before, 1, 2);
        Assert.Equal(1, simulator.Stats.PeakActive);
    }

    [Fact]
    public async Task ARedisRestartUnderLoad_EndsEveryAdmittedRequestOnce_Refuses503WithRetryAfterMeanwhile_AndEveryReplicaServesAgainByItself()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(50));
        var ct = timeout.Token;
        await using var simulator = await SimulatedModelServer.StartAsync(Simulator());
        await using var replicas = await ThreeReplicas.StartAsync(Settings(simulator, slots: 2));

        // Two requests hold the backend's two slots before their first token while the rest wait, four through
        // each replica, so every replica has requests waiting in the queue Redis is about to lose.
        simulator.Hold();
        var chats = Enumerable.Range(0, 12).Select(i => Chat.Start(replicas[i % 3].Client(), $"question {i}", ct)).ToList();
        await Task.WhenAll(chats.Select(c => c.First));
        var running = await FirstAsync(chats.Select(c => c.Started).ToList(), 2, ct);

        await redis.Server.KillAsync();
        var refused = new List<(int Replica, HttpResponseMessage Response)>();
        for (int r = 0; r < 3; r++)
        {
            refused.Add((r, await replicas[r].Client().PostAsJsonAsync("chat", new { message = "while Redis is down" }, ct)));
            refused.Add((r, await replicas[r].Client().PostAsJsonAsync("v1/chat/completions", OpenAIChat, ct)));
        }

        simulator.Release();
        // The running requests finish while Redis is still down.
        var finished = await Task.WhenAll(running.Select(i => chats[i].Events));
        await redis.Server.StartAgainAsync();
        var ended = await Task.WhenAll(chats.Select(c => c.Events));
        var served = new List<int>();
        for (int r = 0; r < 3; r++)
        {
            served.Add(await ServedAgainAsync(replicas[r], ct));
        }

        foreach (var (replica, response) in refused)
        {
            using (response)
            {
                Assert.True(HttpStatusCode.ServiceUnavailable == response.StatusCode, $"replica {replica}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
                Assert.Equal("2", response.Headers.GetValues("Retry-After").Single());
                using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                Assert.Equal("shared_state_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
            }
        }

        Assert.All(finished, events => Assert.Equal("done", EndsOnce(events).Type));
        // The waiting ones were in the queue the restart lost: each fails once, saying so, and none is reported as
        // cancelled, which its client never asked for.
        Assert.All(ended.Where((_, i) => !running.Contains(i)), events =>
        {
            var last = EndsOnce(events);
            Assert.Equal("error", last.Type);
            Assert.Equal("queue_lost", last.Text("code"));
        });
        Assert.All(served, attempts => Assert.InRange(attempts, 1, MaxAttempts));
        Assert.True(simulator.Stats.PeakActive <= 2, simulator.Stats.ToString());
    }

    /// <summary>
    /// Sends requests to <paramref name="replica"/> until one is served, each refusal being Redis mode's 503 (never a
    /// 500), and returns how many it took: the replica got back to work by itself, with nothing done to it.
    /// </summary>
    private static async Task<int> ServedAgainAsync(GatewayProcess replica, CancellationToken cancellationToken)
    {
        for (int attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            using var response = await replica.Client().PostAsJsonAsync("v1/chat/completions", OpenAIChat, cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return attempt;
            }

            string body = await response.Content.ReadAsStringAsync(cancellationToken);
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("shared_state_unavailable", StringComparison.Ordinal),
                $"attempt {attempt}: {(int)response.StatusCode} {body}");
        }

        Assert.Fail($"The replica at {replica.Address} still refused after {MaxAttempts} requests.\n{replica.Output}");
        return MaxAttempts;
    }

    /// <summary>The indexes of the first <paramref name="count"/> of <paramref name="signals"/> to complete.</summary>
    private static async Task<List<int>> FirstAsync(List<Task> signals, int count, CancellationToken cancellationToken)
    {
        var pending = signals.ToList();
        var first = new List<int>();
        while (first.Count < count)
        {
            var completed = await Task.WhenAny(pending).WaitAsync(cancellationToken);
            await completed;
            first.Add(signals.IndexOf(completed));
            pending.Remove(completed);
        }

        return first;
    }

    /// <summary>Asserts that the stream ended with exactly one terminal event, its last, and returns it.</summary>
    private static SseEvent EndsOnce(List<SseEvent> events)
    {
        Assert.Single(events, e => Terminal.Contains(e.Type));
        Assert.Contains(events[^1].Type, Terminal);
        Assert.True(events.Zip(events.Skip(1)).All(pair => pair.First.Id < pair.Second.Id), "event ids must increase");
        return events[^1];
    }

    /// <summary>The fast simulator, able to run four at once: only the gateways' slots keep it to fewer.</summary>
    private static SimulatorOptions Simulator()
    {
        var options = TestGateway.FastSimulator();
        options.Parallel = 4;
        return options;
    }

    private Dictionary<string, string?> Settings(SimulatedModelServer simulator, int slots)
    {
        var settings = GatewayProcess.Backend(0, "gpu", simulator.BaseAddress, slots, "ollama", "llama3.1:8b");
        settings["Anteroom:Redis:Configuration"] = redis.Server.Configuration;
        settings["Anteroom:Redis:Prefix"] = RedisFixture.NewPrefix();
        // Every user here is a browser session from one address, as many people behind one office's NAT.
        settings["Anteroom:Auth:MaxSessionsPerAddress"] = "32";
        // Estimates as fast as the simulator, so a queue of two hundred is not refused for the wait it would take
        // at the default estimates (about nine seconds an answer).
        settings["Anteroom:Estimates:TimeToFirstTokenMs"] = "1";
        settings["Anteroom:Estimates:TokensPerSecond"] = "2000";
        settings["Anteroom:Estimates:OutputTokens"] = "12";
        return settings;
    }

    /// <summary>A native streaming chat read to its end; its first event says it was admitted.</summary>
    private sealed class Chat
    {
        private readonly TaskCompletionSource<SseEvent> _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private Chat()
        {
        }

        /// <summary>The first event: <c>queued</c> or <c>started</c> once admitted.</summary>
        public Task<SseEvent> First => _first.Task;

        /// <summary>Completes when the request got a slot.</summary>
        public Task Started => _started.Task;

        /// <summary>Every event, once the gateway closed the stream.</summary>
        public Task<List<SseEvent>> Events { get; private set; } = null!;

        public static Chat Start(HttpClient client, string message, CancellationToken cancellationToken)
        {
            var chat = new Chat();
            chat.Events = chat.ReadAsync(client, message, cancellationToken);
            return chat;
        }

        private async Task<List<SseEvent>> ReadAsync(HttpClient client, string message, CancellationToken cancellationToken)
        {
            try
            {
                using var stream = await SseStream.ChatAsync(client, new { message }, cancellationToken);
                var events = new List<SseEvent>();
                // Read until the gateway closes the stream, not only to the terminal event: nothing may follow it.
                while (await stream.NextAsync(cancellationToken) is { } next)
                {
                    events.Add(next);
                    _first.TrySetResult(next);
                    if (next.Type == "started")
                    {
                        _started.TrySetResult();
                    }
                }

                _first.TrySetException(new InvalidOperationException("The stream ended without an event."));
                _started.TrySetException(new InvalidOperationException($"'{message}' never started: {string.Join(", ", events.Select(e => e.Type))}"));
                return events;
            }
            catch (Exception exception)
            {
                _first.TrySetException(exception);
                _started.TrySetException(exception);
                throw;
            }
        }
    }

    /// <summary>Three gateway processes started with the same settings, stopped together.</summary>
    private sealed class ThreeReplicas : IAsyncDisposable
    {
        private readonly GatewayProcess[] _processes;

        private ThreeReplicas(GatewayProcess[] processes) => _processes = processes;

        public GatewayProcess this[int index] => _processes[index];

        public static async Task<ThreeReplicas> StartAsync(IReadOnlyDictionary<string, string?> settings)
        {
            var starting = Enumerable.Range(0, 3).Select(_ => GatewayProcess.StartAsync(settings)).ToList();
            try
            {
                return new ThreeReplicas(await Task.WhenAll(starting));
            }
            catch
            {
                foreach (var started in starting.Where(s => s.IsCompletedSuccessfully))
                {
                    await started.Result.DisposeAsync();
                }

                throw;
            }
        }

        /// <summary>
        /// The cookies of <paramref name="count"/> browser sessions, each a user with its own fair share, issued by
        /// the replicas in turn; every replica knows them all, as the keys that protect them are in Redis.
        /// </summary>
        /// <remarks>
        /// Every replica reads every cookie once here and must see the same user: the replicas, started together,
        /// agreed on one protection key (see <c>ProtectionKeyAgreement</c>).
        /// </remarks>
        public async Task<string[]> SessionsAsync(int count, CancellationToken cancellationToken)
        {
            var cookies = new string[count];
            for (int i = 0; i < count; i++)
            {
                using var issued = await _processes[i % _processes.Length].Client().GetAsync("session", cancellationToken);
                Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
                cookies[i] = issued.Headers.GetValues("Set-Cookie")
                    .Single(c => c.StartsWith(BrowserSessions.CookieName + "=", StringComparison.Ordinal)).Split(';')[0];
                string user = await UserAsync(issued, cancellationToken);
                foreach (var process in _processes)
                {
                    using var known = await process.Client(cookies[i]).GetAsync("session", cancellationToken);
                    Assert.Equal(user, await UserAsync(known, cancellationToken));
                }
            }

            return cookies;
        }

        private static async Task<string> UserAsync(HttpResponseMessage response, CancellationToken cancellationToken)
        {
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            return body.RootElement.GetProperty("user").GetString()!;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var process in _processes)
            {
                await process.DisposeAsync();
            }
        }
    }
}
