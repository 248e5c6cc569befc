using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests;

public sealed class TimingTests
{
    [Fact]
    public async Task Generation_WaitsTtftPlusPromptEvaluation_ThenOneTokenPerInterval_OnTheInjectedClock()
    {
        var ct = Sim.Deadline();
        var time = new ObservedTimeProvider();
        // 400 characters ≈ 100 prompt tokens; prompt evaluation at 50 × 80 tokens/s takes 25 ms.
        var options = new SimulatorOptions { TtftMs = 40, TokensPerSecond = 80 };
        await using var server = await SimulatedModelServer.StartAsync(options, timeProvider: time);
        using var client = Sim.Client(server);

        var request = Sim.PostAsync(client, "/api/generate", $"{{\"model\":\"{Sim.Model}\",\"prompt\":\"{new string('x', 400)}\",\"stream\":false,\"options\":{{\"num_predict\":3}}}}", ct);
        // Task.Delay counts whole milliseconds; the pacing keeps to its schedule, so 12.5 ms steps become 12 then 13.
        await time.ExpectAndAdvanceAsync(TimeSpan.FromMilliseconds(65), ct);
        await time.ExpectAndAdvanceAsync(TimeSpan.FromMilliseconds(12), ct);
        await time.ExpectAndAdvanceAsync(TimeSpan.FromMilliseconds(13), ct);
        using var response = await request;

        var body = await Sim.JsonAsync(response, ct);
        Assert.Equal(100, body.GetProperty("prompt_eval_count").GetInt32());
        Assert.Equal(3, body.GetProperty("eval_count").GetInt32());
        Assert.Equal(0, body.GetProperty("load_duration").GetInt64());
        Assert.Equal(25_000_000, body.GetProperty("prompt_eval_duration").GetInt64());
        Assert.Equal(65_000_000, body.GetProperty("eval_duration").GetInt64());
        Assert.Equal(90_000_000, body.GetProperty("total_duration").GetInt64());
    }

    [Fact]
    public async Task Batching_SlowsEveryGenerationAsMoreRunAtOnce()
    {
        var ct = Sim.Deadline();
        var time = new ObservedTimeProvider();
        var options = new SimulatorOptions { Batching = true, BatchKnee = 16, TtftMs = 30, TokensPerSecond = 100 };
        await using var server = await SimulatedModelServer.StartAsync(options, timeProvider: time);
        using var client = Sim.Client(server);
        server.Hold();

        var requests = Enumerable.Range(0, 4).Select(_ => Sim.PostAsync(client, "/api/generate", """{"model":"llama3.1:8b","prompt":"a"}""", ct)).ToList();
        await server.WaitUntilAsync(s => s.Active == 4, ct);
        server.Release();

        // Four running: 1 + 0.7 × 3/15 = 1.14 times the lone time to first token (30 ms + 0.2 ms for one prompt
        // token) = 34.4 ms, which Task.Delay counts in whole milliseconds; alone it would be 30.
        var expected = TimeSpan.FromMilliseconds(34);
        for (var i = 0; i < requests.Count; i++)
            Assert.Equal(expected, await time.NextTimerAsync(ct));
    }
}
