using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Tests.Shared;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// A Redis that restarts empty takes the waiting requests' queue with it: they fail as the queue's loss, in each
/// API's shape, and nothing suggests their clients cancelled them.
/// </summary>
public sealed class LostQueueTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    [Fact]
    public async Task RequestsWaitingInAQueueThatARedisRestartLost_Fail503QueueLostWithRetryAfter_OnEveryApi_AndTheRunningOneFinishes()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        var settings = new Dictionary<string, string?>
        {
            ["Anteroom:Redis:Configuration"] = redis.Server.Configuration,
            ["Anteroom:Redis:Prefix"] = RedisFixture.NewPrefix(),
        };
        await using var gateway = await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);
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
}
