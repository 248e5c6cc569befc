using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests;

public sealed class FaultTests
{
    [Fact]
    public async Task FailBeforeFirstToken_Ollama_Returns500WithAnErrorBody()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.FailBeforeFirstTokenRate = 1);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.False(string.IsNullOrEmpty((await Sim.JsonAsync(response, ct)).GetProperty("error").GetString()));
        await server.WaitUntilAsync(s => s.Failed == 1 && s.Active == 0, ct);
        Assert.Equal(0, server.Stats.TokensGenerated);
    }

    [Fact]
    public async Task FailBeforeFirstToken_OpenAIStream_Returns500InOpenAIShape()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.FailBeforeFirstTokenRate = 1);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true), ct);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("api_error", (await Sim.JsonAsync(response, ct)).GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task FaultCycle_FailsExactlyTheFirstShareOfEveryCycle_InOrder()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options =>
        {
            options.FailBeforeFirstTokenRate = 0.3;
            options.FaultCycle = 10;
        });
        using var client = Sim.Client(server);

        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 20; i++)
        {
            using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(stream: false), ct);
            statuses.Add(response.StatusCode);
        }

        var failed = Enumerable.Range(0, 20).Where(i => statuses[i] == HttpStatusCode.InternalServerError).ToArray();
        Assert.Equal([0, 1, 2, 10, 11, 12], failed);
        Assert.All(statuses, status => Assert.Contains(status, new[] { HttpStatusCode.OK, HttpStatusCode.InternalServerError }));
    }

    [Fact]
    public async Task FailMidStream_Ollama_EndsWithAnErrorLineAndStatus200()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.FailMidStreamRate = 1);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var lines = await Sim.NdjsonAsync(response, ct);
        Assert.True(lines.Count >= 2);
        Assert.All(lines[..^1], line => Assert.False(line.GetProperty("done").GetBoolean()));
        Assert.False(string.IsNullOrEmpty(lines[^1].GetProperty("error").GetString()));
        Assert.DoesNotContain(lines, line => line.TryGetProperty("done", out var done) && done.GetBoolean());
        await server.WaitUntilAsync(s => s.Failed == 1 && s.Active == 0, ct);
    }

    [Fact]
    public async Task FailMidStream_OpenAI_SendsAnErrorEventThenDone()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.FailMidStreamRate = 1);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/chat/completions", Sim.OpenAIChat(stream: true), ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chunks = Sse.Chunks(await Sse.EventsAsync(response, ct));
        var error = chunks[^1].GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.All(chunks[..^1], chunk => Assert.Equal(JsonValueKind.Null, chunk.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
    }

    [Fact]
    public async Task Disconnect_ClosesTheConnectionWithoutAFinalLine()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.DisconnectRate = 1);
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(), ct);
        var lines = new List<string>();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var broke = false;
        try
        {
            while (await reader.ReadLineAsync(ct) is { } line)
                lines.Add(line);
        }
        catch (IOException)
        {
            broke = true;
        }

        Assert.True(broke, "the connection was cut, not ended cleanly");
        Assert.NotEmpty(lines);
        Assert.All(lines, line => Assert.False(Sim.Json(line).GetProperty("done").GetBoolean()));
        await server.WaitUntilAsync(s => s.Failed == 1 && s.Active == 0, ct);
    }

    [Fact]
    public async Task Stall_SendsNothingMoreUntilTheClientLeaves_ThenCountsCancelled()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.StallRate = 1);
        using var client = Sim.Client(server);
        using var leave = CancellationTokenSource.CreateLinkedTokenSource(ct);

        var response = await Sim.PostAsync(client, "/api/chat", Sim.Chat(numPredict: 6), leave.Token);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        await server.WaitUntilAsync(_ => server.Stalled == 1, ct);
        var sent = server.Stats.TokensGenerated;
        for (var i = 0; i < sent; i++)
            Assert.False(Sim.Json((await reader.ReadLineAsync(ct))!).GetProperty("done").GetBoolean());

        // The generation is parked on the client's cancellation alone: the next read can only end by our leaving.
        var next = reader.ReadLineAsync(leave.Token).AsTask();
        Assert.Equal(1, server.Stats.Active);
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next);
        response.Dispose();

        await server.WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
        var stats = server.Stats;
        Assert.Equal((sent, 0, 0, 0L), (stats.TokensGenerated, stats.Completed, stats.Failed, stats.TokensAfterDisconnect));
        Assert.InRange(sent, 1, 5);
    }
}
