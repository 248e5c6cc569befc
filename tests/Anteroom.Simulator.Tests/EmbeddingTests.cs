using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests;

public sealed class EmbeddingTests
{
    [Fact]
    public async Task OllamaEmbed_ReturnsOneUnitVectorPerInput_TheSameForTheSameText()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var single = await Sim.PostAsync(client, "/api/embed", """{"model":"llama3.1:8b","input":"hello"}""", ct);
        using var batch = await Sim.PostAsync(client, "/api/embed", """{"model":"llama3.1:8b","input":["hello","world"]}""", ct);

        var one = await Sim.JsonAsync(single, ct);
        var two = await Sim.JsonAsync(batch, ct);
        Assert.Equal(Sim.Model, one.GetProperty("model").GetString());
        var hello = Floats(one.GetProperty("embeddings")[0]);
        Assert.InRange(hello.Length, 16, 64);
        Assert.Equal(1.0, Math.Sqrt(hello.Sum(x => (double)x * x)), precision: 4);
        Assert.Equal(2, two.GetProperty("embeddings").GetArrayLength());
        Assert.Equal(hello, Floats(two.GetProperty("embeddings")[0]));
        Assert.NotEqual(hello, Floats(two.GetProperty("embeddings")[1]));
        Assert.True(one.GetProperty("total_duration").TryGetInt64(out _));
        Assert.True(one.GetProperty("load_duration").TryGetInt64(out _));
        Assert.Equal(2, one.GetProperty("prompt_eval_count").GetInt32());
    }

    [Fact]
    public async Task OllamaLegacyEmbeddings_ReturnsASingleVector()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var legacy = await Sim.PostAsync(client, "/api/embeddings", """{"model":"llama3.1:8b","prompt":"hello"}""", ct);
        using var modern = await Sim.PostAsync(client, "/api/embed", """{"model":"llama3.1:8b","input":"hello"}""", ct);

        Assert.Equal(
            Floats((await Sim.JsonAsync(modern, ct)).GetProperty("embeddings")[0]),
            Floats((await Sim.JsonAsync(legacy, ct)).GetProperty("embedding")));
    }

    [Fact]
    public async Task OpenAIEmbeddings_FloatAndBase64_CarryTheSameVector()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var floats = await Sim.PostAsync(client, "/v1/embeddings", """{"model":"llama3.1:8b","input":["hello","world"]}""", ct);
        using var base64 = await Sim.PostAsync(client, "/v1/embeddings", """{"model":"llama3.1:8b","input":"hello","encoding_format":"base64"}""", ct);

        var list = await Sim.JsonAsync(floats, ct);
        Assert.Equal("list", list.GetProperty("object").GetString());
        Assert.Equal(Sim.Model, list.GetProperty("model").GetString());
        var data = list.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([0, 1], data.Select(item => item.GetProperty("index").GetInt32()));
        Assert.All(data, item => Assert.Equal("embedding", item.GetProperty("object").GetString()));
        Assert.Equal(4, list.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, list.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var encoded = (await Sim.JsonAsync(base64, ct)).GetProperty("data")[0].GetProperty("embedding").GetString()!;
        var bytes = Convert.FromBase64String(encoded);
        var decoded = Enumerable.Range(0, bytes.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4))).ToArray();
        Assert.Equal(Floats(data[0].GetProperty("embedding")), decoded);
    }

    [Fact]
    public async Task OpenAIEmbeddings_UnknownEncoding_Returns400NamingIt()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var response = await Sim.PostAsync(client, "/v1/embeddings", """{"model":"llama3.1:8b","input":"hello","encoding_format":"int8"}""", ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("encoding_format", (await Sim.JsonAsync(response, ct)).GetProperty("error").GetProperty("param").GetString());
    }

    private static float[] Floats(JsonElement array) => array.EnumerateArray().Select(x => x.GetSingle()).ToArray();
}
