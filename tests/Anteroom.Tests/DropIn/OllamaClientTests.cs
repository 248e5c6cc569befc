using System.Net;
using System.Text;
using OllamaSharp.Models;
using OllamaSharp.Models.Chat;
using static Anteroom.Tests.DropIn.DropInGateway;
using AI = Microsoft.Extensions.AI;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// OllamaSharp, unchanged, against Anteroom's Ollama API: relayed to an Ollama backend
/// (<see cref="DropInGateway.OnOllamaBackend"/>) and translated to an OpenAI-protocol one (<see cref="DropInGateway.OnOpenAIBackend"/>).
/// </summary>
public sealed class OllamaClientTests(SharedDropInGateway shared) : IClassFixture<SharedDropInGateway>
{
    private readonly TestGateway _gateway = shared.Gateway;

    private static ChatRequest Chat(string model, bool stream, int? numPredict = null) => new()
    {
        Model = model,
        Messages = [new Message(ChatRole.User, "Tell me a story.")],
        Stream = stream,
        Options = numPredict is null ? null : new RequestOptions { NumPredict = numPredict },
    };

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task ChatStreaming_DeliversPieces_ThenADoneLineWithCountsAndDurations(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var chunks = new List<ChatResponseStream>();
        await foreach (var chunk in ollama.ChatAsync(Chat(model, stream: true), ct))
        {
            chunks.Add(chunk!);
        }

        var pieces = chunks.Where(c => !c.Done).Select(c => c.Message.Content).ToList();
        Assert.True(pieces.Count > 1, $"Expected the answer in several pieces, got {pieces.Count}.");
        Assert.False(string.IsNullOrWhiteSpace(string.Concat(pieces)));
        Assert.All(chunks, c => Assert.Equal(model, c.Model));
        Assert.All(chunks.Where(c => !c.Done), c => Assert.Equal(ChatRole.Assistant, c.Message.Role));
        var done = Assert.IsType<ChatDoneResponseStream>(chunks[^1]);
        Assert.Equal("stop", done.DoneReason);
        Assert.Equal(pieces.Count, done.EvalCount);
        Assert.True(done.PromptEvalCount > 0);
        Assert.True(done.TotalDuration > 0);
        Assert.Single(chunks, c => c.Done);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task Chat_NotStreaming_ReturnsOneDoneAnswerWithTheWholeText(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var chunks = new List<ChatResponseStream>();
        await foreach (var chunk in ollama.ChatAsync(Chat(model, stream: false), ct))
        {
            chunks.Add(chunk!);
        }

        var done = Assert.IsType<ChatDoneResponseStream>(Assert.Single(chunks));
        Assert.False(string.IsNullOrWhiteSpace(done.Message.Content));
        Assert.Equal(ChatRole.Assistant, done.Message.Role);
        Assert.Equal("stop", done.DoneReason);
        Assert.True(done.EvalCount > 0);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task NumPredict_EndsTheAnswerAtExactlyThatManyTokens_WithDoneReasonLength(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var chunks = new List<ChatResponseStream>();
        await foreach (var chunk in ollama.ChatAsync(Chat(model, stream: true, numPredict: 3), ct))
        {
            chunks.Add(chunk!);
        }

        var done = Assert.IsType<ChatDoneResponseStream>(chunks[^1]);
        Assert.Equal("length", done.DoneReason);
        Assert.Equal(3, done.EvalCount);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task GenerateStreaming_DeliversPieces_ThenADoneLine(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var chunks = new List<GenerateResponseStream>();
        await foreach (var chunk in ollama.GenerateAsync(new GenerateRequest { Model = model, Prompt = "Once upon a time", Stream = true }, ct))
        {
            chunks.Add(chunk!);
        }

        var pieces = chunks.Where(c => !c.Done).Select(c => c.Response).ToList();
        Assert.True(pieces.Count > 1, $"Expected the answer in several pieces, got {pieces.Count}.");
        Assert.False(string.IsNullOrWhiteSpace(string.Concat(pieces)));
        var done = Assert.IsType<GenerateDoneResponseStream>(chunks[^1]);
        Assert.Equal("stop", done.DoneReason);
        Assert.Equal(pieces.Count, done.EvalCount);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task Generate_NotStreaming_ReturnsOneDoneAnswerWithTheWholeText(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var chunks = new List<GenerateResponseStream>();
        await foreach (var chunk in ollama.GenerateAsync(new GenerateRequest { Model = model, Prompt = "Once upon a time", Stream = false }, ct))
        {
            chunks.Add(chunk!);
        }

        var done = Assert.IsType<GenerateDoneResponseStream>(Assert.Single(chunks));
        Assert.False(string.IsNullOrWhiteSpace(done.Response));
        Assert.Equal("stop", done.DoneReason);
        Assert.True(done.EvalCount > 0);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task ChatClientAbstraction_GetsTheWholeAnswer(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();
        AI.IChatClient chat = ollama;

        var response = await chat.GetResponseAsync([new AI.ChatMessage(AI.ChatRole.User, "Say hello.")], new AI.ChatOptions { ModelId = model }, ct);

        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.Equal(AI.ChatFinishReason.Stop, response.FinishReason);
        Assert.True(response.Usage?.OutputTokenCount > 0);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task Embed_ReturnsOneUnitVectorPerInput_InOrder(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var batch = await ollama.EmbedAsync(new EmbedRequest { Model = model, Input = ["first text", "second text"] }, ct);
        var second = await ollama.EmbedAsync(new EmbedRequest { Model = model, Input = ["second text"] }, ct);

        Assert.Equal(2, batch.Embeddings.Count);
        Assert.All(batch.Embeddings, vector => Assert.Equal(1.0, Math.Sqrt(vector.Sum(x => (double)x * x)), precision: 3));
        Assert.NotEqual(batch.Embeddings[0], batch.Embeddings[1]);
        Assert.Equal(second.Embeddings[0], batch.Embeddings[1]);
    }

    [Fact]
    public async Task LocalModels_AreTheUnionOfEveryBackendsModels()
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var models = (await ollama.ListLocalModelsAsync(ct)).ToList();

        Assert.Equal([OnOllamaBackend, OnOpenAIBackend], models.Select(m => m.Name).Order(StringComparer.Ordinal));
        Assert.All(models, m => Assert.False(string.IsNullOrEmpty(m.Digest)));
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task ShowModel_DescribesItsFamilyAndSize(string model)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        var shown = await ollama.ShowModelAsync(new ShowModelRequest { Model = model }, ct);

        // The relayed answer is the Ollama backend's own ("llama"); the other is described by the gateway ("qwen2.5").
        Assert.False(string.IsNullOrEmpty(shown.Details.Family));
        Assert.StartsWith(shown.Details.Family, model, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(shown.Details.ParameterSize));
    }

    [Fact]
    public async Task Version_IsTheOllamaVersionAnteroomAnswersAs()
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        Assert.Equal("0.12.0", await ollama.GetVersionAsync(ct));
    }

    [Fact]
    public async Task IsRunning_IsTrue()
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        Assert.True(await ollama.IsRunningAsync(ct));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Chat_WithUnknownModel_ThrowsHttpRequestExceptionWith404(bool stream)
    {
        var ct = Within30Seconds();
        using var ollama = _gateway.OllamaClient();

        // OllamaSharp reads the error text of 400 answers only; any other failure status is HttpClient's own exception.
        var thrown = await Assert.ThrowsAsync<HttpRequestException>(async () =>
        {
            await foreach (var chunk in ollama.ChatAsync(Chat("no-such-model", stream), ct))
            {
                Assert.Fail($"Expected no chunk, got one from {chunk?.Model}.");
            }
        });

        Assert.Equal(HttpStatusCode.NotFound, thrown.StatusCode);
    }
}

/// <summary>OllamaSharp against a busy gateway: each test holds a backend or changes settings, so has its own gateway.</summary>
public sealed class OllamaClientQueueTests
{
    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task RunningModels_ShowTheModelOfAGenerationInProgress(string model)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var simulator = gateway.Simulator(BackendOf(model));
        simulator.Hold();
        using var running = await DropInHttp.OllamaStreamAsync(gateway.Client("a"), model, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        using var ollama = gateway.OllamaClient();

        var models = (await ollama.ListRunningModelsAsync(ct)).ToList();

        var only = Assert.Single(models);
        Assert.Equal(model, only.Name);
        Assert.True(only.ExpiresAt > DateTime.UtcNow);
        simulator.Release();
    }

    /// <summary>An Ollama stream sends its headers at admission and then nothing at all until the first real chunk.</summary>
    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task ChatStreaming_QueuedBehindAnotherRequest_CompletesWhenItsTurnComes(string model)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var simulator = gateway.Simulator(BackendOf(model));
        simulator.Hold();
        using var running = await DropInHttp.OllamaStreamAsync(gateway.Client("a"), model, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        using var ollama = gateway.OllamaClient();
        var request = new ChatRequest { Model = model, Messages = [new Message(ChatRole.User, "I can wait.")] };
        var chunks = new List<ChatResponseStream>();
        var reading = Task.Run(async () =>
        {
            await foreach (var chunk in ollama.ChatAsync(request, ct))
            {
                chunks.Add(chunk!);
            }
        }, ct);

        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);
        simulator.Release();
        await reading;

        var done = Assert.IsType<ChatDoneResponseStream>(chunks[^1]);
        Assert.Equal("stop", done.DoneReason);
        Assert.False(string.IsNullOrWhiteSpace(string.Concat(chunks.Select(c => c.Message.Content))));
    }

    [Fact]
    public async Task RunningModels_AreNone_WhenNothingRuns()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        using var ollama = gateway.OllamaClient();

        Assert.Empty(await ollama.ListRunningModelsAsync(ct));
    }

    [Fact]
    public async Task Chat_WhenTheQueueIsFull_ThrowsHttpRequestExceptionWith503()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(new Dictionary<string, string?> { ["Anteroom:Queue:MaxQueueLength"] = "1" });
        var simulator = gateway.Simulator(OllamaBackend);
        simulator.Hold();
        using var running = await DropInHttp.OllamaStreamAsync(gateway.Client("a"), OnOllamaBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        using var waiting = await DropInHttp.OllamaStreamAsync(gateway.Client("b"), OnOllamaBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);
        using var ollama = gateway.OllamaClient();

        var thrown = await Assert.ThrowsAsync<HttpRequestException>(async () =>
        {
            var request = new ChatRequest { Model = OnOllamaBackend, Messages = [new Message(ChatRole.User, "one too many")] };
            await foreach (var chunk in ollama.ChatAsync(request, ct))
            {
                Assert.Fail($"Expected no chunk, got one from {chunk?.Model}.");
            }
        });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, thrown.StatusCode);
        simulator.Release();
    }

    [Fact]
    public async Task QueueFull_Answers503WithOllamasOwnText_AndRetryAfter()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(new Dictionary<string, string?> { ["Anteroom:Queue:MaxQueueLength"] = "1" });
        var simulator = gateway.Simulator(OllamaBackend);
        simulator.Hold();
        using var running = await DropInHttp.OllamaStreamAsync(gateway.Client("a"), OnOllamaBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        using var waiting = await DropInHttp.OllamaStreamAsync(gateway.Client("b"), OnOllamaBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);

        using var refused = await gateway.Client("c").PostAsync(
            "api/chat",
            new StringContent($$"""{"model":"{{OnOllamaBackend}}","messages":[{"role":"user","content":"one too many"}]}""", Encoding.UTF8, "application/json"),
            ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("""{"error":"server busy, please try again.  maximum pending requests exceeded"}""", await refused.Content.ReadAsStringAsync(ct));
        Assert.Equal("application/json", refused.Content.Headers.ContentType?.MediaType);
        Assert.InRange(refused.Headers.RetryAfter?.Delta?.TotalSeconds ?? 0, 1, 600);
        simulator.Release();
    }
}
