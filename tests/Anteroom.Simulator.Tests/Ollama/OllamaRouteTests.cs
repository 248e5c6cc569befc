using System.Net;
using Anteroom.Simulator.Tests.Support;

namespace Anteroom.Simulator.Tests.Ollama;

public sealed class OllamaRouteTests
{
    [Fact]
    public async Task Root_GetAndHead_SayOllamaIsRunning()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var get = await client.GetAsync("/", ct);
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/"), ct);

        Assert.Equal("Ollama is running", await get.Content.ReadAsStringAsync(ct));
        Assert.Equal("text/plain", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("", await head.Content.ReadAsStringAsync(ct));
    }

    [Fact]
    public async Task Tags_ListsEveryModelWithDetails()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync(options => options.Models = ["llama3.1:8b", "qwen2.5:0.5b"]);
        using var client = Sim.Client(server);

        var models = Sim.Json(await client.GetStringAsync("/api/tags", ct)).GetProperty("models").EnumerateArray().ToList();

        Assert.Equal(["llama3.1:8b", "qwen2.5:0.5b"], models.Select(m => m.GetProperty("name").GetString()));
        var llama = models[0];
        Assert.Equal("llama3.1:8b", llama.GetProperty("model").GetString());
        Assert.True(DateTimeOffset.TryParse(llama.GetProperty("modified_at").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
        Assert.True(llama.GetProperty("size").GetInt64() > 0);
        Assert.Matches("^[0-9a-f]{64}$", llama.GetProperty("digest").GetString());
        var details = llama.GetProperty("details");
        Assert.Equal("gguf", details.GetProperty("format").GetString());
        Assert.Equal("llama", details.GetProperty("family").GetString());
        Assert.Equal("8.0B", details.GetProperty("parameter_size").GetString());
        Assert.Equal("Q4_K_M", details.GetProperty("quantization_level").GetString());
        Assert.Equal("500M", models[1].GetProperty("details").GetProperty("parameter_size").GetString());
    }

    [Fact]
    public async Task Ps_ListsLoadedModelsWithExpiryAndVram()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        var model = Assert.Single(Sim.Json(await client.GetStringAsync("/api/ps", ct)).GetProperty("models").EnumerateArray());

        Assert.Equal(Sim.Model, model.GetProperty("name").GetString());
        Assert.True(DateTimeOffset.Parse(model.GetProperty("expires_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > DateTimeOffset.UtcNow);
        Assert.Equal(model.GetProperty("size").GetInt64(), model.GetProperty("size_vram").GetInt64());
    }

    [Fact]
    public async Task Version_ReturnsAVersionString()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        var version = Sim.Json(await client.GetStringAsync("/api/version", ct)).GetProperty("version").GetString();

        Assert.Matches(@"^\d+\.\d+\.\d+$", version);
    }

    [Fact]
    public async Task Show_KnownModel_DescribesIt_AndUnknownModelIs404()
    {
        var ct = Sim.Deadline();
        await using var server = await Sim.StartAsync();
        using var client = Sim.Client(server);

        using var known = await Sim.PostAsync(client, "/api/show", """{"model":"llama3.1:8b"}""", ct);
        using var unknown = await Sim.PostAsync(client, "/api/show", """{"model":"nope"}""", ct);

        var body = await Sim.JsonAsync(known, ct);
        Assert.Equal("llama", body.GetProperty("details").GetProperty("family").GetString());
        Assert.Equal("llama", body.GetProperty("model_info").GetProperty("general.architecture").GetString());
        Assert.Contains("FROM llama3.1:8b", body.GetProperty("modelfile").GetString(), StringComparison.Ordinal);
        Assert.Equal(System.Text.Json.JsonValueKind.String, body.GetProperty("template").ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.String, body.GetProperty("parameters").ValueKind);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("model 'nope' not found", (await Sim.JsonAsync(unknown, ct)).GetProperty("error").GetString());
    }
}
