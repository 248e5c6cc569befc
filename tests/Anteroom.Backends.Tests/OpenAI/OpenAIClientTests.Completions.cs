using System.Net;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.OpenAI;

public sealed partial class OpenAIClientTests
{
    [Fact]
    public async Task StreamCompletion_Request_PostsCompletionsWithPromptAndSampling()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, "data: [DONE]\n\n", StreamMediaType);
        var client = CreateClient(server, "http://gpu-1.test:8000");

        await CollectAsync(client.StreamChatAsync(Completion() with { System = "Be brief.", MaxOutputTokens = 64 }));

        var request = Assert.Single(server.Requests);
        Assert.Equal(new Uri("http://gpu-1.test:8000/v1/completions"), request.Uri);
        using var body = JsonDocument.Parse(request.Body!);
        var root = body.RootElement;
        Assert.Equal("llama3.1:8b", root.GetProperty("model").GetString());
        Assert.Equal("Once upon a time", root.GetProperty("prompt").GetString());
        Assert.True(root.GetProperty("stream").GetBoolean());
        Assert.True(root.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(64, root.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.7, root.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, root.GetProperty("top_p").GetDouble());
        Assert.Equal(42, root.GetProperty("seed").GetInt32());
        Assert.Equal("""["\n\n","THE END"]""", root.GetProperty("stop").GetRawText());
        // The completions API has no system prompt; sending one would be rejected by strict servers.
        Assert.False(root.TryGetProperty("system", out _));
        Assert.False(root.TryGetProperty("messages", out _));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task StreamCompletion_TextChunks_YieldTokensThenDone(int seed)
    {
        var wire = CompletionEvent("Once") + CompletionEvent("") + CompletionEvent(" there 🌍", "length") + CompletionUsage(new(4, 2)) + "data: [DONE]\n\n";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, new TricklingBody(wire, seed), StreamMediaType));

        var chunks = await CollectAsync(client.StreamChatAsync(Completion()));

        Assert.Equal([GenerationChunk.Token("Once"), GenerationChunk.Token(" there 🌍"), GenerationChunk.Done("length", new(4, 2))], chunks);
    }

    [Fact]
    public async Task StreamCompletion_WithoutPrompt_Throws()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, "data: [DONE]\n\n", StreamMediaType);

        await Assert.ThrowsAsync<ArgumentException>(() => CollectAsync(CreateClient(server).StreamChatAsync(Completion() with { Prompt = null })));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task StreamChat_SamplingSettings_AreSentAtTheTopLevel()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);

        await CollectAsync(CreateClient(server).StreamChatAsync(Request() with { TopP = 0.5, Seed = 7, Stop = ["User:"] }));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        var root = body.RootElement;
        Assert.Equal(0.5, root.GetProperty("top_p").GetDouble());
        Assert.Equal(7, root.GetProperty("seed").GetInt32());
        Assert.Equal("""["User:"]""", root.GetProperty("stop").GetRawText());
        Assert.False(root.TryGetProperty("options", out _));
    }

    [Fact]
    public async Task StreamChat_NoSamplingSettings_LeavesThemOut()
    {
        var server = FakeModelServer.Answering(HttpStatusCode.OK, EndEvents("stop", new(1, 1)), StreamMediaType);

        await CollectAsync(CreateClient(server).StreamChatAsync(Request() with { Stop = [] }));

        using var body = JsonDocument.Parse(Assert.Single(server.Requests).Body!);
        foreach (var name in (string[])["top_p", "seed", "stop"])
        {
            Assert.False(body.RootElement.TryGetProperty(name, out _), name);
        }
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
