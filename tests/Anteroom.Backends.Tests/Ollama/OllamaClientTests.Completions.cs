using System.Net;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.Ollama;

public sealed partial class OllamaClientTests
{
    [Fact]
    public async Task StreamCompletion_Request_PostsGenerateWithPromptSystemAndOptions()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, GenerateEnd("stop", new(1, 1)), StreamMediaType);
        var client = CreateClient(server, "http://gpu-1.test:11434");

        await CollectAsync(client.StreamChatAsync(Completion() with { System = "Be brief.", MaxOutputTokens = 64 }));

        var request = Assert.Single(server.Requests);
        Assert.Equal(new Uri("http://gpu-1.test:11434/api/generate"), request.Uri);
        using var body = JsonDocument.Parse(request.Body!);
        var root = body.RootElement;
        Assert.Equal("llama3.1:8b", root.GetProperty("model").GetString());
        Assert.Equal("Once upon a time", root.GetProperty("prompt").GetString());
        Assert.Equal("Be brief.", root.GetProperty("system").GetString());
        Assert.True(root.GetProperty("stream").GetBoolean());
        Assert.False(root.TryGetProperty("messages", out _));
        Assert.Equal(
            """{"num_predict":64,"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\n\n","THE END"]}""",
            root.GetProperty("options").GetRawText());
    }

    [Fact]
    public async Task StreamCompletion_WithoutSystem_LeavesItOut()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, GenerateEnd("stop", new(1, 1)), StreamMediaType);

        await CollectAsync(CreateClient(server).StreamChatAsync(Completion()));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.False(body.RootElement.TryGetProperty("system", out _));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task StreamCompletion_ResponseChunks_YieldTokensThenDone(int seed)
    {
        var wire = GenerateEvent("Once") + GenerateEvent("") + GenerateEvent(" there 🌍") + GenerateEnd("length", new(3, 2));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, new TricklingBody(wire, seed), StreamMediaType));

        var chunks = await CollectAsync(client.StreamChatAsync(Completion()));

        Assert.Equal([GenerationChunk.Token("Once"), GenerationChunk.Token(" there 🌍"), GenerationChunk.Done("length", new(3, 2))], chunks);
    }

    [Fact]
    public async Task StreamCompletion_WithoutPrompt_Throws()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, GenerateEnd("stop", new(1, 1)), StreamMediaType);

        await Assert.ThrowsAsync<ArgumentException>(() => CollectAsync(CreateClient(server).StreamChatAsync(Completion() with { Prompt = null })));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task StreamChat_SamplingSettings_AreSentInOptions()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);

        await CollectAsync(CreateClient(server).StreamChatAsync(Request() with { TopP = 0.5, Seed = 7, Stop = ["User:"] }));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.Equal("""{"top_p":0.5,"seed":7,"stop":["User:"]}""", body.RootElement.GetProperty("options").GetRawText());
    }

    [Fact]
    public async Task StreamChat_EmptyStopList_LeavesOptionsOut()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);

        await CollectAsync(CreateClient(server).StreamChatAsync(Request() with { Stop = [] }));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        Assert.False(body.RootElement.TryGetProperty("options", out _));
    }

    private static GenerationRequest Completion() => new()
    {
        Model = "llama3.1:8b",
        Messages = [],
        Kind = GenerationKind.Completion,
        Prompt = "Once upon a time",
        Temperature = 0.7,
        TopP = 0.9,
        Seed = 42,
        Stop = ["\n\n", "THE END"],
    };
}
