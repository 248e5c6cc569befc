using System.Net.Http.Headers;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.Ollama;

/// <summary>Ollama's native API: <c>POST /api/chat</c> answered with NDJSON, <c>GET /api/tags</c>.</summary>
internal sealed class OllamaDialect : IBackendDialect
{
    public static OllamaDialect Instance { get; } = new();

    public BackendProtocol Protocol => BackendProtocol.Ollama;

    public string ChatPath => "api/chat";

    public string ModelsPath => "api/tags";

    public HttpContent CreateChatContent(GenerationRequest request) => JsonBody.Create(
        new OllamaChatRequest
        {
            Model = request.Model,
            Messages = request.Messages,
            Options = request.MaxOutputTokens is null && request.Temperature is null
                ? null
                : new OllamaOptions { NumPredict = request.MaxOutputTokens, Temperature = request.Temperature },
        },
        OllamaJsonContext.Default.OllamaChatRequest);

    public IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers) => new OllamaChunkReader(body);

    public async ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken)
    {
        var list = await JsonSerializer.DeserializeAsync(body, OllamaJsonContext.Default.OllamaTagList, cancellationToken)
            .ConfigureAwait(false);
        return list?.Models?.Where(tag => tag.Name is not null).Select(tag => tag.Name!).ToArray();
    }
}
