using System.Text;
using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Ollama;

/// <summary>Ollama's answer to <c>"stream": false</c>: one object shaped like the final chunk, holding the whole text.</summary>
internal sealed class OllamaSingleWriter(HttpContext http, OllamaShape shape, string model, TimeProvider time) : IGenerationWriter
{
    private readonly StringBuilder _text = new();

    public ValueTask TokenAsync(string token, CancellationToken cancellationToken)
    {
        _text.Append(token);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DoneAsync(GenerationResult result, CancellationToken cancellationToken)
    {
        var createdAt = time.GetUtcNow().UtcDateTime;
        var text = _text.ToString();
        if (shape == OllamaShape.Chat)
            await JsonResponse.WriteAsync(http, StatusCodes.Status200OK, OllamaFrames.Chat(model, createdAt, text, result), SimulatorJson.Wire.OllamaChatResponse);
        else
            await JsonResponse.WriteAsync(http, StatusCodes.Status200OK, OllamaFrames.Generate(model, createdAt, text, result), SimulatorJson.Wire.OllamaGenerateResponse);
    }

    // Nothing was sent yet, so even a failure after some tokens can still be an honest status.
    public async ValueTask FailAsync(string message, CancellationToken cancellationToken) =>
        await OllamaErrors.WriteAsync(http, StatusCodes.Status500InternalServerError, message);

    public Task BusyAsync() => OllamaErrors.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, OllamaErrors.Busy);
}
