using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Ollama;

/// <summary>Ollama's NDJSON stream: one object per line, flushed per token, ending in a <c>done:true</c> line or an error line.</summary>
internal sealed class OllamaStreamWriter(HttpContext http, OllamaShape shape, string model, TimeProvider time) : IGenerationWriter
{
    private readonly FrameWriter _frames = new(http.Response, "application/x-ndjson");

    public async ValueTask TokenAsync(string token, CancellationToken cancellationToken)
    {
        OllamaFrames.Write(_frames, shape, model, time.GetUtcNow().UtcDateTime, token, done: null);
        await _frames.FlushAsync(cancellationToken);
    }

    public async ValueTask DoneAsync(GenerationResult result, CancellationToken cancellationToken)
    {
        OllamaFrames.Write(_frames, shape, model, time.GetUtcNow().UtcDateTime, "", result);
        await _frames.FlushAsync(cancellationToken);
    }

    public async ValueTask FailAsync(string message, CancellationToken cancellationToken)
    {
        if (!_frames.Started)
        {
            await OllamaErrors.WriteAsync(http, StatusCodes.Status500InternalServerError, message);
            return;
        }

        // Once streaming began the status is already 200: the error travels as the last line.
        _frames.Frame([], new OllamaError(message), SimulatorJson.Wire.OllamaError, "\n"u8);
        await _frames.FlushAsync(cancellationToken);
    }

    public Task BusyAsync() => OllamaErrors.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, OllamaErrors.Busy);
}
