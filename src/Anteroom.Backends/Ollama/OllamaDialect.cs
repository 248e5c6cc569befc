using System.Net.Http.Headers;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.Ollama;

/// <summary>
/// Ollama's native API: <c>POST /api/chat</c> and <c>/api/generate</c> answered with NDJSON, <c>POST /api/embed</c>,
/// <c>GET /api/tags</c>.
/// </summary>
internal sealed class OllamaDialect : IBackendDialect
{
    public static OllamaDialect Instance { get; } = new();

    public BackendProtocol Protocol => BackendProtocol.Ollama;

    public string ChatPath => "api/chat";

    public string CompletionPath => "api/generate";

    public string EmbedPath => "api/embed";

    public string ModelsPath => "api/tags";

    public HttpContent CreateGenerationContent(GenerationRequest request) => request.Kind == GenerationKind.Completion
        ? JsonBody.Create(
            new OllamaGenerateRequest { Model = request.Model, Prompt = request.Prompt!, System = request.System, Options = Options(request) },
            OllamaJsonContext.Default.OllamaGenerateRequest)
        : JsonBody.Create(
            new OllamaChatRequest { Model = request.Model, Messages = request.Messages, Options = Options(request) },
            OllamaJsonContext.Default.OllamaChatRequest);

    public IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers) => new OllamaChunkReader(body);

    public HttpContent CreateEmbedContent(string model, IReadOnlyList<string> inputs) =>
        JsonBody.Create(new OllamaEmbedRequest { Model = model, Input = inputs }, OllamaJsonContext.Default.OllamaEmbedRequest);

    public async ValueTask<EmbeddingResult?> ReadEmbeddingsAsync(Stream body, CancellationToken cancellationToken)
    {
        var answer = await JsonSerializer.DeserializeAsync(body, OllamaJsonContext.Default.OllamaEmbedResponse, cancellationToken)
            .ConfigureAwait(false);
        return answer?.Embeddings is { } vectors && !vectors.Contains(null!)
            ? new EmbeddingResult(vectors, answer.PromptEvalCount ?? 0, null)
            : null;
    }

    public async ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken)
    {
        var list = await JsonSerializer.DeserializeAsync(body, OllamaJsonContext.Default.OllamaTagList, cancellationToken)
            .ConfigureAwait(false);
        return list?.Models?.Where(tag => tag.Name is not null).Select(tag => tag.Name!).ToArray();
    }

    public IRelayFraming CreateRelayFraming() => new OllamaRelayFraming();

    // Left out entirely when nothing is set, so the model's own defaults (its Modelfile) apply untouched.
    private static OllamaOptions? Options(GenerationRequest request) =>
        request.MaxOutputTokens is null && request.Temperature is null && request.TopP is null && request.Seed is null
            && request.Stop is not { Count: > 0 }
            ? null
            : new OllamaOptions
            {
                NumPredict = request.MaxOutputTokens,
                Temperature = request.Temperature,
                TopP = request.TopP,
                Seed = request.Seed,
                Stop = request.Stop is { Count: > 0 } stop ? stop : null,
            };
}
