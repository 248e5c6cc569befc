using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests.OpenAI;

public sealed class OpenAICompletionAndModelTests
{
    [Fact]
    public async Task CompletionStream_SendsTextCompletionChunksThenUsageAndDone()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/completions", """{"model":"llama3.1:8b","prompt":"Once upon a time","stream":true,"max_tokens":4,"stream_options":{"include_usage":true}}""", ct);

        var chunks = Sse.Chunks(await Sse.EventsAsync(response, ct));
        Assert.All(chunks, chunk =>
        {
            Assert.Equal("text_completion", chunk.GetProperty("object").GetString());
            Assert.Equal(chunks[0].GetProperty("id").GetString(), chunk.GetProperty("id").GetString());
        });
        Assert.StartsWith("cmpl-", chunks[0].GetProperty("id").GetString(), StringComparison.Ordinal);
        var texts = chunks[..4].Select(chunk => chunk.GetProperty("choices")[0].GetProperty("text").GetString()).ToList();
        Assert.All(texts, text => Assert.StartsWith(" ", text, StringComparison.Ordinal));
        Assert.Equal("length", chunks[4].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(0, chunks[5].GetProperty("choices").GetArrayLength());
        Assert.Equal(4, chunks[5].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(6, chunks.Count);
    }

    [Fact]
    public async Task Completion_NonStreaming_ReturnsTextAndUsage()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/completions", """{"model":"llama3.1:8b","prompt":["Say","something"]}""", ct);

        var body = await Sim.JsonAsync(response, ct);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(
            choice.GetProperty("text").GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length,
            body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Models_ListsEveryModel_AndRetrievesOneById()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.Models = ["llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"]);
        using var client = Sim.Client(server);

        var list = Sim.Json(await client.GetStringAsync("/v1/models", ct));
        using var one = await client.GetAsync("/v1/models/meta-llama/Llama-3.1-8B-Instruct", ct);
        using var missing = await client.GetAsync("/v1/models/nope", ct);

        Assert.Equal("list", list.GetProperty("object").GetString());
        Assert.Equal(["llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"], list.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.All(list.GetProperty("data").EnumerateArray(), model =>
        {
            Assert.Equal("model", model.GetProperty("object").GetString());
            Assert.True(model.GetProperty("created").GetInt64() > 0);
            Assert.Equal(JsonValueKind.String, model.GetProperty("owned_by").ValueKind);
        });
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", (await Sim.JsonAsync(one, ct)).GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("model_not_found", (await Sim.JsonAsync(missing, ct)).GetProperty("error").GetProperty("code").GetString());
    }
}
