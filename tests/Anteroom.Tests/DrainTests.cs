using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Tests.Replicas;

namespace Anteroom.Tests;

/// <summary>A real gateway process stopped with SIGTERM, as a service manager or Kubernetes stops it.</summary>
public sealed class DrainTests
{
    [Fact]
    public async Task Sigterm_LetsRunningRequestsFinish_TellsWaitingOnesWhenToRetry_RefusesNewOnes_AndExitsZero()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        var simulatorOptions = TestGateway.FastSimulator(outputTokens: 40);
        simulatorOptions.Parallel = 2;
        await using var simulator = await Simulator.SimulatedModelServer.StartAsync(simulatorOptions);
        var settings = GatewayProcess.Backend(0, "gpu", simulator.BaseAddress, 2, "ollama", "llama3.1:8b");
        settings["Anteroom:Shutdown:DrainSeconds"] = "30";
        await using var gateway = await GatewayProcess.StartAsync(settings);

        simulator.Hold();
        var running = new List<SseStream>();
        for (int i = 0; i < 2; i++)
        {
            var stream = await SseStream.ChatAsync(gateway.Client(), new { message = $"running {i}" }, ct);
            await stream.ReadUntilAsync(ct, "started");
            running.Add(stream);
        }

        var waiting = new List<SseStream>();
        for (int i = 0; i < 2; i++)
        {
            var stream = await SseStream.ChatAsync(gateway.Client(), new { message = $"waiting {i}" }, ct);
            Assert.Equal("queued", (await stream.NextAsync(ct))!.Type);
            waiting.Add(stream);
        }

        var exited = gateway.TerminateAsync(TimeSpan.FromSeconds(45));
        var waitingEnds = await Task.WhenAll(waiting.Select(s => s.ReadToEndAsync(ct)));
        // Still draining: the running requests are held on the model server.
        using var refused = await gateway.Client().PostAsJsonAsync(
            "v1/chat/completions", new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } }, ct);
        using var ready = await gateway.Client().GetAsync("readyz", ct);
        simulator.Release();
        var runningEnds = await Task.WhenAll(running.Select(s => s.ReadToEndAsync(ct)));
        int exitCode = await exited;

        foreach (var events in waitingEnds)
        {
            var last = events[^1];
            Assert.Equal(("error", "server_shutting_down"), (last.Type, last.Text("code")));
            Assert.True(last.Data.GetProperty("retry_after_ms").GetInt64() > 0);
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) > 0);
        using (var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(ct)))
        {
            Assert.Equal("server_shutting_down", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        using (var readiness = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(ct)))
        {
            Assert.False(readiness.RootElement.GetProperty("checks").GetProperty("draining").GetProperty("ok").GetBoolean());
        }

        foreach (var events in runningEnds)
        {
            Assert.Equal("done", events[^1].Type);
            // The whole answer: every token the backend generated reached the client.
            Assert.Equal(events[^1].Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), events.Count(e => e.Type == "token"));
        }

        Assert.Equal(0, exitCode);
        Assert.Equal(2, simulator.Stats.Completed);
    }
}
