using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Tests.Logging;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// A gateway in Redis mode while its Redis is away: it stays up however long that lasts, and a Redis that restarts
/// empty takes the waiting requests' queue with it, which they report as such, not as cancelled by their clients.
/// </summary>
public sealed class RedisOutageTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task ARedisOutageLongerThanTheSweepInterval_LeavesTheGatewayRunning_AndItServesAgainOnceRedisIsBack()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var logs = new CapturedLogs();
        await using var gateway = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], Settings(), logs, time: time);
        var stopping = gateway.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        var chat = new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "Hello?" } } };
        using (var before = await gateway.Client("ada").PostAsJsonAsync("v1/chat/completions", chat, ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await redis.Server.KillAsync();
        // The sweeper ticks every quarter of the replay window (300 s), at most every minute.
        time.Advance(TimeSpan.FromSeconds(60));
        await logs.WaitUntilAsync(lines => lines.Any(l => l.Category == typeof(RequestSweeper).FullName || l.Level >= LogLevel.Critical), ct);
        bool stoppedDuringOutage = stopping.IsCancellationRequested;
        var connection = gateway.Services.GetRequiredService<IConnectionMultiplexer>();
        var restored = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.ConnectionRestored += (_, e) =>
        {
            if (e.ConnectionType == ConnectionType.Interactive)
            {
                restored.TrySetResult();
            }
        };
        // Started again before asserting, so the next test of the class finds its Redis whatever happens here.
        await redis.Server.StartAgainAsync();
        Assert.False(stoppedDuringOutage, string.Join("\n", logs.Lines.Where(l => l.Level >= LogLevel.Error).Select(l => l.Message)));
        await restored.Task.WaitAsync(ct);
        using var after = await gateway.Client("ada").PostAsJsonAsync("v1/chat/completions", chat, ct);

        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task RequestsWaitingInAQueueThatARedisRestartLost_Fail503QueueLostWithRetryAfter_OnEveryApi_AndTheRunningOneFinishes()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        await using var gateway = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], Settings());
        var server = gateway.Simulator("gpu");
        server.Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("ada"), new { message = "first" }, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        var native = gateway.Client("bob").PostAsJsonAsync("chat", new { message = "second" }, ct);
        var openAI = gateway.Client("cy").PostAsJsonAsync(
            "v1/chat/completions", new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = "third" } } }, ct);
        using var streamed = await SseStream.ChatAsync(gateway.Client("dee"), new { message = "fourth" }, ct);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 3, ct);

        await redis.Server.KillAsync();
        await redis.Server.StartAgainAsync();
        using var nativeAnswer = await native;
        using var openAIAnswer = await openAI;
        var streamedEvents = await streamed.ReadToEndAsync(ct);
        server.Release();
        var runningEvents = await running.ReadToEndAsync(ct);

        foreach (var answer in (HttpResponseMessage[])[nativeAnswer, openAIAnswer])
        {
            string body = await answer.Content.ReadAsStringAsync(ct);
            Assert.True(answer.StatusCode == HttpStatusCode.ServiceUnavailable, body);
            Assert.Equal("1", answer.Headers.GetValues("Retry-After").Single());
            using var error = JsonDocument.Parse(body);
            Assert.Equal("queue_lost", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        var lost = streamedEvents[^1];
        Assert.Equal("error", lost.Type);
        Assert.Equal("queue_lost", lost.Text("code"));
        Assert.Equal(1000, lost.Int("retry_after_ms"));
        Assert.Equal("done", runningEvents[^1].Type);
    }

    private Dictionary<string, string?> Settings() => new()
    {
        ["Anteroom:Redis:Configuration"] = redis.Server.Configuration,
        ["Anteroom:Redis:Prefix"] = RedisFixture.NewPrefix(),
    };
}
