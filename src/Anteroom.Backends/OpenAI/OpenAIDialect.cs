using System.Net.Http.Headers;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.OpenAI;

/// <summary>
/// The OpenAI-compatible API: <c>POST /v1/chat/completions</c> and <c>/v1/completions</c> answered with SSE,
/// <c>POST /v1/embeddings</c>, <c>GET /v1/models</c>.
/// </summary>
internal sealed class OpenAIDialect : IBackendDialect
{
    public static OpenAIDialect Instance { get; } = new();

    public BackendProtocol Protocol => BackendProtocol.OpenAI;

    public string ChatPath => "v1/chat/completions";

    public string CompletionPath => "v1/completions";

    public string EmbedPath => "v1/embeddings";

    public string ModelsPath => "v1/models";

    public HttpContent CreateGenerationContent(GenerationRequest request) => request.Kind == GenerationKind.Completion
        ? JsonBody.Create(
            new OpenAICompletionRequest
            {
                Model = request.Model,
                Prompt = request.Prompt!,
                MaxTokens = request.MaxOutputTokens,
                Temperature = request.Temperature,
                TopP = request.TopP,
                Seed = request.Seed,
                Stop = Stop(request),
            },
            OpenAIJsonContext.Default.OpenAICompletionRequest)
        : JsonBody.Create(
            new OpenAIChatRequest
            {
                Model = request.Model,
                Messages = request.Messages,
                MaxTokens = request.MaxOutputTokens,
                Temperature = request.Temperature,
                TopP = request.TopP,
                Seed = request.Seed,
                Stop = Stop(request),
            },
            OpenAIJsonContext.Default.OpenAIChatRequest);

    public IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers) =>
        new OpenAIChunkReader(body, headers.ContentType?.MediaType);

    public HttpContent CreateEmbedContent(string model, IReadOnlyList<string> inputs) =>
        JsonBody.Create(new OpenAIEmbeddingRequest { Model = model, Input = inputs }, OpenAIJsonContext.Default.OpenAIEmbeddingRequest);

    public async ValueTask<EmbeddingResult?> ReadEmbeddingsAsync(Stream body, CancellationToken cancellationToken)
    {
        var answer = await JsonSerializer.DeserializeAsync(body, OpenAIJsonContext.Default.OpenAIEmbeddingResponse, cancellationToken)
            .ConfigureAwait(false);
        if (answer?.Data is not { } data || data.Any(item => item?.Embedding is null))
        {
            return null;
        }

        // The specification lets a server list the vectors in any order; index says which input each belongs to.
        var ordered = data.OrderBy(item => item.Index).ToArray();
        for (var i = 0; i < ordered.Length; i++)
        {
            if (ordered[i].Index != i)
            {
                return null;
            }
        }

        return new EmbeddingResult(ordered.Select(item => item.Embedding!).ToArray(), answer.Usage?.PromptTokens ?? 0, null);
    }

    public async ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken)
    {
        var list = await JsonSerializer.DeserializeAsync(body, OpenAIJsonContext.Default.OpenAIModelList, cancellationToken)
            .ConfigureAwait(false);
        return list?.Data?.Where(model => model.Id is not null).Select(model => model.Id!).ToArray();
    }

    public IRelayFraming CreateRelayFraming() => new OpenAIRelayFraming();

    private static IReadOnlyList<string>? Stop(GenerationRequest request) => request.Stop is { Count: > 0 } stop ? stop : null;
}
