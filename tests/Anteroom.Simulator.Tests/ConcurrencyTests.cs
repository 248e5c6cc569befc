using System.Net;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests;

public sealed class ConcurrencyTests
{
    [Fact]
    public async Task OneSlot_WithHold_QueuesTheSecondRequest_AndReleaseCompletesBoth()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.Parallel = 1);
        using var client = Sim.Client(server);
        server.Hold();

        var first = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Active == 1, ct);
        var second = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Queued == 1, ct);

        var held = server.Stats;
        Assert.Equal((1, 1, 0), (held.Active, held.Queued, held.Completed));
        Assert.False(first.IsCompleted);

        server.Release();
        using var firstResponse = await first;
        using var secondResponse = await second;
        await server.WaitUntilAsync(s => s.Completed == 2, ct);

        Assert.Equal(HttpStatusCode.OK, firstResponse.StatusCode);
        Assert.Equal(HttpStatusCode.OK, secondResponse.StatusCode);
        var done = server.Stats;
        Assert.Equal((0, 0, 2, 1), (done.Active, done.Queued, done.Completed, done.PeakActive));
    }

    [Fact]
    public async Task FullQueue_RefusesWithOllamas503Text()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => (options.Parallel, options.MaxQueue) = (1, 1));
        using var client = Sim.Client(server);
        server.Hold();
        var running = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Active == 1, ct);
        var waiting = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Queued == 1, ct);

        using var refused = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);
        using var refusedOpenAI = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true), ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("""{"error":"server busy, please try again.  maximum pending requests exceeded"}""", await refused.Content.ReadAsStringAsync(ct));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refusedOpenAI.StatusCode);
        Assert.Equal("api_error", (await Sim.JsonAsync(refusedOpenAI, ct)).GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(2, server.Stats.Rejected);

        server.Release();
        (await running).Dispose();
        (await waiting).Dispose();
        await server.WaitUntilAsync(s => s.Completed == 2, ct);
    }

    [Fact]
    public async Task ClientLeavingMidStream_StopsGenerationAtOnceAndFreesTheSlot()
    {
        var ct = Sim.Deadline();
        // Long enough that only cancellation can end it within the test.
        await using var server = await Sim.StartAsync(options => (options.OutputTokens, options.TokensPerSecond) = (100_000, 1000));
        using var client = Sim.Client(server);
        using var leave = CancellationTokenSource.CreateLinkedTokenSource(ct);

        var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), leave.Token);
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct)))
        {
            for (var i = 0; i < 3; i++)
                Assert.NotNull(await reader.ReadLineAsync(ct));
            await leave.CancelAsync();
            response.Dispose();
        }

        await server.WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
        var stats = server.Stats;
        Assert.Equal((0, 0, 0), (stats.Completed, stats.Failed, stats.TokensAfterDisconnect));
        Assert.True(stats.TokensGenerated < 100_000);
    }

    [Fact]
    public async Task WaitingClientLeaving_IsDroppedFromTheQueue()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.Parallel = 1);
        using var client = Sim.Client(server);
        server.Hold();
        var running = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Active == 1, ct);
        using var leave = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var waiting = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), leave.Token);
        await server.WaitUntilAsync(s => s.Queued == 1, ct);

        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await server.WaitUntilAsync(s => s.Queued == 0 && s.Cancelled == 1, ct);

        Assert.Equal(1, server.Stats.Active);
        server.Release();
        (await running).Dispose();
        await server.WaitUntilAsync(s => s.Completed == 1 && s.Active == 0, ct);
    }

    [Fact]
    public async Task Batching_RunsEveryRequestAtOnceWhateverParallelSays()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => (options.Batching, options.Parallel) = (true, 1));
        using var client = Sim.Client(server);
        server.Hold();

        var requests = Enumerable.Range(0, 3).Select(_ => Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(), ct)).ToList();
        await server.WaitUntilAsync(s => s.Active == 3, ct);

        Assert.Equal(0, server.Stats.Queued);
        server.Release();
        foreach (var request in requests)
            (await request).Dispose();
        await server.WaitUntilAsync(s => s.Completed == 3, ct);
        Assert.Equal(3, server.Stats.PeakActive);
    }

    [Fact]
    public async Task Dispose_EndsHeldGenerations_AndTheirClientsSeeTheConnectionClose()
    {
        var ct = Sim.Deadline();
        var server = await Sim.StartAsync();
        using var client = Sim.Client(server);
        server.Hold();
        var held = Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);
        await server.WaitUntilAsync(s => s.Active == 1, ct);

        await server.DisposeAsync();

        await Assert.ThrowsAsync<HttpRequestException>(() => held);
        Assert.Equal((0, 1), (server.Stats.Active, server.Stats.Cancelled));
    }

    [Fact]
    public async Task ControlRoutes_HoldReleaseAndStats_WorkOverHttp()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var hold = await client.PostAsync("/sim/hold", null, ct);
        var request = Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
        await server.WaitUntilAsync(s => s.Active == 1, ct);
        var stats = Sim.Json(await client.GetStringAsync("/sim/stats", ct));
        using var release = await client.PostAsync("/sim/release", null, ct);
        (await request).Dispose();

        Assert.Equal(HttpStatusCode.OK, hold.StatusCode);
        Assert.Equal(HttpStatusCode.OK, release.StatusCode);
        Assert.Equal(1, stats.GetProperty("active").GetInt32());
        string[] fields = ["active", "queued", "completed", "cancelled", "failed", "rejected", "peak_active", "tokens_generated", "tokens_after_disconnect"];
        Assert.Equal(fields, stats.EnumerateObject().Select(p => p.Name));
    }
}
