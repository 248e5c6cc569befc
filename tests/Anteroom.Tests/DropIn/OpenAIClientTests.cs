using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using OpenAI.Chat;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// The official OpenAI .NET SDK, unchanged, against Anteroom's <c>/v1</c>: relayed to an OpenAI-protocol backend
/// (<see cref="DropInGateway.OnOpenAIBackend"/>) and translated to an Ollama one (<see cref="DropInGateway.OnOllamaBackend"/>).
/// </summary>
public sealed class OpenAIClientTests(SharedDropInGateway shared) : IClassFixture<SharedDropInGateway>
{
    private readonly TestGateway _gateway = shared.Gateway;

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task Chat_ReturnsTheWholeAnswer_WithFinishReasonStopAndUsage(string model)
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient(model);

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Say hello.")], cancellationToken: ct);

        Assert.False(string.IsNullOrWhiteSpace(completion.Content[0].Text));
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(model, completion.Model);
        Assert.InRange(completion.Usage.InputTokenCount, 1, 1000);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 1000);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task ChatStreaming_DeliversTheAnswerInPieces_ThenFinishReasonStop_ThenUsage(string model)
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient(model);

        // The SDK always asks for stream_options.include_usage when streaming, so the usage chunk must come.
        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Tell me a story.")], cancellationToken: ct))
        {
            updates.Add(update);
        }

        var pieces = updates.SelectMany(u => u.ContentUpdate).Select(part => part.Text).ToList();
        string text = string.Concat(pieces);
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.True(pieces.Count > 1, $"Expected the answer in several pieces, got {pieces.Count}.");
        Assert.Equal([ChatFinishReason.Stop], updates.Where(u => u.FinishReason is not null).Select(u => u.FinishReason!.Value));
        Assert.Equal(ChatMessageRole.Assistant, updates.First(u => u.ContentUpdate.Count > 0).Role);
        Assert.All(updates, u => Assert.Equal(model, u.Model));
        Assert.Single(updates.Select(u => u.CompletionId).Distinct());
        var usage = updates[^1].Usage;
        Assert.NotNull(usage);
        Assert.InRange(usage.OutputTokenCount, 1, 1000);
        Assert.Equal(usage.InputTokenCount + usage.OutputTokenCount, usage.TotalTokenCount);
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task MaxOutputTokenCount_EndsTheAnswerAtExactlyThatManyTokens_WithFinishReasonLength(string model)
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient(model);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 3 };

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Write a long essay.")], options, ct);

        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(3, completion.Usage.OutputTokenCount);
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task MaxOutputTokenCount_WhileStreaming_EndsWithFinishReasonLength_AfterExactlyThatManyTokens(string model)
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient(model);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 3 };

        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Write a long essay.")], options, ct))
        {
            updates.Add(update);
        }

        Assert.Equal([ChatFinishReason.Length], updates.Where(u => u.FinishReason is not null).Select(u => u.FinishReason!.Value));
        Assert.Equal(3, updates[^1].Usage?.OutputTokenCount);
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task Embedding_OfOneText_IsAUnitVector(string model)
    {
        var ct = Within30Seconds();
        var embeddings = _gateway.OpenAIClient().GetEmbeddingClient(model);

        // The SDK asks for base64 unless told otherwise, and decodes it itself.
        var embedding = (await embeddings.GenerateEmbeddingAsync("The quick brown fox.", cancellationToken: ct)).Value;

        var vector = embedding.ToFloats().ToArray();
        Assert.Equal(32, vector.Length);
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(x => (double)x * x)), precision: 3);
        Assert.Equal(0, embedding.Index);
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task Embeddings_OfSeveralTexts_ComeInOrder_EachAsItsOwnSingleEmbedding(string model)
    {
        var ct = Within30Seconds();
        var embeddings = _gateway.OpenAIClient().GetEmbeddingClient(model);
        string[] texts = ["first text", "second text", "third text"];

        var batch = (await embeddings.GenerateEmbeddingsAsync(texts, cancellationToken: ct)).Value;
        var second = (await embeddings.GenerateEmbeddingAsync(texts[1], cancellationToken: ct)).Value;

        Assert.Equal([0, 1, 2], batch.Select(e => e.Index));
        Assert.Equal(3, batch.Select(e => string.Join(',', e.ToFloats().ToArray())).Distinct().Count());
        Assert.Equal(second.ToFloats().ToArray(), batch[1].ToFloats().ToArray());
        Assert.Equal(model, batch.Model);
        Assert.True(batch.Usage.InputTokenCount > 0);
    }

    [Fact]
    public async Task Embedding_IsTheSameVector_WhetherRelayedOrTranslated()
    {
        var ct = Within30Seconds();
        var client = _gateway.OpenAIClient();
        const string Text = "same text, two protocols";

        var relayed = (await client.GetEmbeddingClient(OnOpenAIBackend).GenerateEmbeddingAsync(Text, cancellationToken: ct)).Value;
        var translated = (await client.GetEmbeddingClient(OnOllamaBackend).GenerateEmbeddingAsync(Text, cancellationToken: ct)).Value;

        // Both simulators derive the vector from the text alone: any difference is the gateway's doing.
        Assert.Equal(relayed.ToFloats().ToArray(), translated.ToFloats().ToArray());
    }

    [Fact]
    public async Task ModelList_IsTheUnionOfEveryBackendsModels()
    {
        var ct = Within30Seconds();

        var models = (await _gateway.OpenAIClient().GetOpenAIModelClient().GetModelsAsync(ct)).Value;

        Assert.Equal([OnOllamaBackend, OnOpenAIBackend], models.Select(m => m.Id).Order(StringComparer.Ordinal));
        Assert.All(models, m => Assert.False(string.IsNullOrEmpty(m.OwnedBy)));
    }

    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task Model_ById_IsFound(string model)
    {
        var ct = Within30Seconds();

        var found = (await _gateway.OpenAIClient().GetOpenAIModelClient().GetModelAsync(model, ct)).Value;

        Assert.Equal(model, found.Id);
        Assert.True(found.CreatedAt > DateTimeOffset.UnixEpoch);
    }

    [Fact]
    public async Task Model_WithUnknownId_ThrowsClientResultExceptionWith404()
    {
        var ct = Within30Seconds();

        var thrown = await Assert.ThrowsAsync<ClientResultException>(() => _gateway.OpenAIClient().GetOpenAIModelClient().GetModelAsync("no-such-model", ct));

        Assert.Equal(404, thrown.Status);
    }

    [Fact]
    public async Task Chat_WithUnknownModel_ThrowsClientResultExceptionWith404_NamingTheModel()
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient("no-such-model");

        var thrown = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: ct));

        Assert.Equal(404, thrown.Status);
        Assert.Contains("no-such-model", thrown.Message);
        Assert.Contains("model_not_found", thrown.GetRawResponse()!.Content.ToString());
    }

    [Fact]
    public async Task ChatStreaming_WithUnknownModel_ThrowsClientResultExceptionWith404()
    {
        var ct = Within30Seconds();
        var chat = _gateway.OpenAIClient().GetChatClient("no-such-model");

        var thrown = await Assert.ThrowsAsync<ClientResultException>(async () =>
        {
            await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")], cancellationToken: ct))
            {
                Assert.Fail($"Expected no update, got {update.CompletionId}.");
            }
        });

        Assert.Equal(404, thrown.Status);
    }
}

/// <summary>The OpenAI SDK against a busy gateway: each test holds backends or changes settings, so has its own gateway.</summary>
public sealed class OpenAIClientQueueTests
{
    [Fact]
    public async Task Chat_WhenTheQueueIsFull_ThrowsClientResultExceptionWith429_AndRetryAfter()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(new Dictionary<string, string?> { ["Anteroom:Queue:MaxQueueLength"] = "1" });
        var simulator = gateway.Simulator(OpenAIBackend);
        simulator.Hold();
        using var running = await DropInHttp.OpenAIStreamAsync(gateway.Client("a"), OnOpenAIBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        using var waiting = await DropInHttp.OpenAIStreamAsync(gateway.Client("b"), OnOpenAIBackend, ct);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);
        var chat = gateway.OpenAIClient().GetChatClient(OnOpenAIBackend);

        var thrown = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("one too many")], cancellationToken: ct));

        Assert.Equal(429, thrown.Status);
        var response = thrown.GetRawResponse()!;
        Assert.True(response.Headers.TryGetValue("Retry-After", out string? retryAfter), "Retry-After is missing.");
        Assert.InRange(int.Parse(retryAfter!, CultureInfo.InvariantCulture), 1, 600);
        Assert.True(response.Headers.TryGetValue("retry-after-ms", out _), "retry-after-ms is missing.");
        Assert.Contains("queue_full", response.Content.ToString());
        simulator.Release();
    }

    /// <summary>
    /// The .NET SDK gives up when the headers, or any later read of a stream, take longer than its network timeout
    /// (100 s by default). Here the timeout is 1 s and the request waits in the queue for about 1.5 s — the time
    /// passes inside the simulator, which takes that long to answer the request ahead. Headers right after admission
    /// and comments every 0.2 s carry the SDK through the wait; with keep-alives slower than the timeout, this fails.
    /// </summary>
    [Theory]
    [InlineData(OnOpenAIBackend)]
    [InlineData(OnOllamaBackend)]
    public async Task ChatStreaming_QueuedLongerThanTheSdksNetworkTimeout_StillCompletes(string model)
    {
        var ct = Within30Seconds();
        var networkTimeout = TimeSpan.FromSeconds(1);
        await using var gateway = await StartAsync(
            new Dictionary<string, string?> { ["Anteroom:Stream:KeepAliveSeconds"] = "0.2" },
            simulator => simulator.TtftMs = 1500);
        using var ahead = await DropInHttp.OpenAIStreamAsync(gateway.Client("ahead"), model, ct);
        await gateway.WaitForSchedulerAsync(s => s.Running == 1, ct);
        var wire = new WireRecorder();
        using var transport = new HttpClient(wire) { Timeout = Timeout.InfiniteTimeSpan };
        var chat = gateway.OpenAIClient(options =>
        {
            options.NetworkTimeout = networkTimeout;
            options.Transport = new HttpClientPipelineTransport(transport);
        }).GetChatClient(model);

        var clock = Stopwatch.StartNew();
        TimeSpan? firstPieceAfter = null;
        var text = new StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("worth the wait")], cancellationToken: ct))
        {
            foreach (var part in update.ContentUpdate)
            {
                firstPieceAfter ??= clock.Elapsed;
                text.Append(part.Text);
            }
        }

        Assert.False(string.IsNullOrWhiteSpace(text.ToString()));
        Assert.True(firstPieceAfter > networkTimeout, $"The first piece came after {firstPieceAfter}: the request did not wait long enough to prove anything.");
        string stream = wire.Text;
        int firstComment = stream.IndexOf(": queued position=1 eta_ms=", StringComparison.Ordinal);
        int firstData = stream.IndexOf("data: ", StringComparison.Ordinal);
        Assert.True(firstComment == 0 && firstData > firstComment, $"Expected queue comments before any data; the stream began: {stream[..Math.Min(200, stream.Length)]}");
        Assert.DoesNotContain("\nid:", stream);
        Assert.EndsWith("data: [DONE]\n\n", stream);
    }
}
