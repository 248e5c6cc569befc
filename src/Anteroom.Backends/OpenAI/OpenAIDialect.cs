using System.Net.Http.Headers;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.OpenAI;

/// <summary>The OpenAI-compatible API: <c>POST /v1/chat/completions</c> answered with SSE, <c>GET /v1/models</c>.</summary>
internal sealed class OpenAIDialect : IBackendDialect
{
    public static OpenAIDialect Instance { get; } = new();

    public BackendProtocol Protocol => BackendProtocol.OpenAI;

    public string ChatPath => "v1/chat/completions";

    public string ModelsPath => "v1/models";

    public HttpContent CreateChatContent(GenerationRequest request) => JsonBody.Create(
        new OpenAIChatRequest
        {
            Model = request.Model,
            Messages = request.Messages,
            MaxTokens = request.MaxOutputTokens,
            Temperature = request.Temperature,
        },
        OpenAIJsonContext.Default.OpenAIChatRequest);

    public IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers) =>
        new OpenAIChunkReader(body, headers.ContentType?.MediaType);

    public async ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken)
    {
        var list = await JsonSerializer.DeserializeAsync(body, OpenAIJsonContext.Default.OpenAIModelList, cancellationToken)
            .ConfigureAwait(false);
        return list?.Data?.Where(model => model.Id is not null).Select(model => model.Id!).ToArray();
    }
}
