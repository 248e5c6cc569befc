using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Anteroom.Tests;

public sealed class NativeApiTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    [Theory]
    [InlineData("{}", "message")]
    [InlineData("{\"message\": 42}", "message")]
    [InlineData("{\"message\": \"hi\", \"max_tokens\": -1}", "max_tokens")]
    [InlineData("{\"message\": \"hi\", \"model\": [1]}", "model")]
    [InlineData("{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", "messages[0]")]
    [InlineData("{\"message\": \"hi\", \"reconnect_grace_ms\": \"soon\"}", "reconnect_grace_ms")]
    public async Task BadBody_Gets400NamingTheField(string body, string field)
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

        using var response = await gateway.Client("a").PostAsync("chat/stream", new StringContent(body, Encoding.UTF8, "application/json"), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        Assert.Equal(field, error.RootElement.GetProperty("error").GetProperty("field").GetString());
        Assert.Contains(field, error.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task MalformedJson_Gets400_NotA500()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

        using var response = await gateway.Client("a").PostAsync("chat", new StringContent("{\"message\": ", Encoding.UTF8, "application/json"), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid_json", await response.Content.ReadAsStringAsync(ct));
    }

    [Fact]
    public async Task UnknownModel_Gets404()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

        using var response = await gateway.Client("a").PostAsJsonAsync("chat/stream", new { message = "hi", model = "no-such-model" }, ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("model_not_found", await response.Content.ReadAsStringAsync(ct));
    }

    [Fact]
    public async Task Chat_WithoutStreaming_ReturnsTheWholeAnswerWithUsageAndTimings()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));

        using var response = await gateway.Client("a").PostAsJsonAsync("chat", new { message = "hello there", max_tokens = 5 }, ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        var root = body.RootElement;
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("text").GetString()));
        Assert.Equal("length", root.GetProperty("finish_reason").GetString());
        Assert.Equal(5, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("gpu", root.GetProperty("backend").GetString());
        Assert.True(root.GetProperty("timings").GetProperty("total_ms").GetInt64() >= 0);
    }

    [Fact]
    public async Task Reconnect_WithLastEventId_ReplaysExactlyWhatWasMissed()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator(outputTokens: 30)));
        var client = gateway.Client("a");
        gateway.Simulator("gpu").Hold();
        var first = await SseStream.ChatAsync(client, new { message = "resume me", reconnect_grace_ms = 10_000 }, ct);
        var seen = await first.ReadUntilAsync(ct, "started");
        string id = first.RequestId;
        first.Dispose();
        gateway.Simulator("gpu").Release();

        using var request = new HttpRequestMessage(HttpMethod.Get, $"queue/requests/{id}/events");
        request.Headers.Add("Last-Event-ID", seen[^1].Id!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var resumed = await SseStream.OpenAsync(client, request, ct);
        var rest = await resumed.ReadToEndAsync(ct);

        Assert.Equal(seen[^1].Id + 1, rest[0].Id);
        Assert.Equal("done", rest[^1].Type);
        Assert.Equal(rest[^1].Data.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), rest.Count(e => e.Type == "token"));
    }

    [Fact]
    public async Task RequestStatus_ReportsPositionWhileWaiting_AndTheOutcomeAfter()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        gateway.Simulator("gpu").Hold();
        var client = gateway.Client("a");
        using var running = await SseStream.ChatAsync(client, new { message = "one" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(client, new { message = "two" }, ct);
        await waiting.NextAsync(ct);

        using var whileWaiting = JsonDocument.Parse(await client.GetStringAsync($"queue/requests/{waiting.RequestId}", ct));
        gateway.Simulator("gpu").Release();
        await waiting.ReadToEndAsync(ct);
        using var afterwards = JsonDocument.Parse(await client.GetStringAsync($"queue/requests/{waiting.RequestId}", ct));

        Assert.Equal(("waiting", 1), (whileWaiting.RootElement.GetProperty("state").GetString(), whileWaiting.RootElement.GetProperty("position").GetInt32()));
        Assert.Equal("completed", afterwards.RootElement.GetProperty("state").GetString());
        Assert.False(afterwards.RootElement.TryGetProperty("position", out _));
    }

    [Fact]
    public async Task IdleStream_CarriesKeepAliveComments_AndTheNativeHeaders()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?> { ["Anteroom:Stream:KeepAliveSeconds"] = "0.05" });
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(gateway.Client("a"), new { message = "one" }, ct);
        await running.ReadUntilAsync(ct, "started");
        string comment = await running.NextCommentAsync(ct);
        gateway.Simulator("gpu").Release();
        var events = await running.ReadToEndAsync(ct);

        Assert.Equal(": keep-alive", comment);
        Assert.Equal("done", events[^1].Type);
        Assert.Equal("text/event-stream", running.Response.Content.Headers.ContentType!.MediaType);
        Assert.True(running.Response.Headers.CacheControl!.NoCache);
        Assert.Equal("no", running.Response.Headers.GetValues("X-Accel-Buffering").Single());
    }

    [Fact]
    public async Task Browser_GetsAnHttpOnlySessionCookie_ThatIsItsIdentity()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        var client = gateway.Client();

        using var models = await client.GetAsync("session", ct);
        string cookie = models.Headers.GetValues("Set-Cookie").Single();
        using var withCookie = new HttpRequestMessage(HttpMethod.Post, "chat") { Content = JsonContent.Create(new { message = "hi" }) };
        withCookie.Headers.Add("Cookie", cookie.Split(';')[0]);
        using var answered = await client.SendAsync(withCookie, ct);
        string id = answered.Headers.GetValues("X-Request-Id").Single();
        using var statusWithoutCookie = await client.GetAsync($"queue/requests/{id}", ct);

        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, statusWithoutCookie.StatusCode);
    }
}
