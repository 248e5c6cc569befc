using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.OpenAI;

/// <summary>
/// OpenAI's server-sent events: each event exactly <c>data: {json}\n\n</c> (no <c>event:</c> or <c>id:</c> lines),
/// flushed per token, ending in <c>data: [DONE]\n\n</c>; a failure after the first byte becomes an error event.
/// </summary>
internal sealed class OpenAIStreamWriter(HttpContext http, OpenAIStreamHeader header, bool includeUsage) : IGenerationWriter
{
    private static ReadOnlySpan<byte> Data => "data: "u8;
    private static ReadOnlySpan<byte> EndOfEvent => "\n\n"u8;
    private static ReadOnlySpan<byte> Done => "data: [DONE]\n\n"u8;

    private readonly FrameWriter _frames = new(http.Response, "text/event-stream; charset=utf-8");

    public async ValueTask TokenAsync(string token, CancellationToken cancellationToken)
    {
        if (header.Shape == OpenAIShape.Chat)
        {
            // The first chunk announces the role with empty content, as OpenAI and vLLM do.
            if (!_frames.Started)
                Chat(new ChunkChoice(0, new ChunkDelta(Role: "assistant", Content: "")));
            Chat(new ChunkChoice(0, new ChunkDelta(Content: token)));
        }
        else
        {
            Text(new TextChoice(token, 0));
        }

        await _frames.FlushAsync(cancellationToken);
    }

    public async ValueTask DoneAsync(GenerationResult result, CancellationToken cancellationToken)
    {
        if (header.Shape == OpenAIShape.Chat)
            Chat(new ChunkChoice(0, new ChunkDelta()) { FinishReason = result.FinishReason });
        else
            Text(new TextChoice("", 0) { FinishReason = result.FinishReason });

        if (includeUsage)
        {
            var usage = new Usage(result.PromptTokens, result.CompletionTokens, result.PromptTokens + result.CompletionTokens);
            if (header.Shape == OpenAIShape.Chat)
                _frames.Frame(Data, new ChatCompletionChunk(header.Id, header.Created, header.Model, [], usage), SimulatorJson.Wire.ChatCompletionChunk, EndOfEvent);
            else
                _frames.Frame(Data, new TextCompletion(header.Id, header.Created, header.Model, [], usage), SimulatorJson.Wire.TextCompletion, EndOfEvent);
        }

        _frames.Raw(Done);
        await _frames.FlushAsync(cancellationToken);
    }

    public async ValueTask FailAsync(string message, CancellationToken cancellationToken)
    {
        if (!_frames.Started)
        {
            await OpenAIErrors.ServerErrorAsync(http, message);
            return;
        }

        var error = new OpenAIErrorBody(OpenAIErrors.Error(message, OpenAIErrors.ServerError));
        _frames.Frame(Data, error, SimulatorJson.Wire.OpenAIErrorBody, EndOfEvent);
        _frames.Raw(Done);
        await _frames.FlushAsync(cancellationToken);
    }

    public Task BusyAsync() => OpenAIErrors.BusyAsync(http);

    private void Chat(ChunkChoice choice) =>
        _frames.Frame(Data, new ChatCompletionChunk(header.Id, header.Created, header.Model, [choice]), SimulatorJson.Wire.ChatCompletionChunk, EndOfEvent);

    private void Text(TextChoice choice) =>
        _frames.Frame(Data, new TextCompletion(header.Id, header.Created, header.Model, [choice]), SimulatorJson.Wire.TextCompletion, EndOfEvent);
}
