using System.Runtime.CompilerServices;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.Ollama;

/// <summary>
/// Reads Ollama's NDJSON chat or generate stream: one JSON object per line, the last one <c>done:true</c>; the
/// text sits in <c>message.content</c> (chat) or <c>response</c> (generate).
/// </summary>
internal sealed class OllamaChunkReader(Stream body) : IChunkReader
{
    // Chat chunks are a few hundred bytes; a megabyte without a newline is not Ollama talking.
    private const int MaxLineBytes = 1024 * 1024;

    private readonly Utf8LineReader _lines = new(body, MaxLineBytes);

    // The done line can carry text of its own; it goes out as a token first and the done chunk waits here.
    private GenerationChunk? _pendingDone;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<GenerationChunk> ReadAsync(CancellationToken cancellationToken)
    {
        if (_pendingDone is { } done)
        {
            _pendingDone = null;
            return done;
        }

        while (true)
        {
            ReadOnlyMemory<byte> line;
            try
            {
                if (await _lines.ReadLineAsync(cancellationToken).ConfigureAwait(false) is not { } next)
                {
                    return Failed(BackendFailure.Disconnected, "The stream ended without a done:true line.");
                }

                line = next;
            }
            catch (InvalidDataException ex)
            {
                return Failed(BackendFailure.ProtocolViolation, ex.Message);
            }

            if (Decode(line.Span) is { } chunk)
            {
                return chunk;
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _lines.Dispose();
        return ValueTask.CompletedTask;
    }

    // Null for lines that carry nothing to hand out: blank lines and chunks with empty content.
    private GenerationChunk? Decode(ReadOnlySpan<byte> line)
    {
        if (line.Trim(" \t"u8).IsEmpty)
        {
            return null;
        }

        OllamaChatChunk chunk;
        try
        {
            chunk = JsonSerializer.Deserialize(line, OllamaJsonContext.Default.OllamaChatChunk);
        }
        catch (JsonException)
        {
            return _lines.LastLineUnterminated
                ? Failed(BackendFailure.Disconnected, "The stream ended in the middle of a line.")
                : Failed(BackendFailure.ProtocolViolation, $"Not an Ollama chunk: {BackendErrorText.Preview(line)}");
        }

        if (chunk.Error is { } error)
        {
            return Failed(BackendFailure.StreamError, BackendErrorText.FromErrorValue(error));
        }

        var text = chunk.Message?.Content ?? chunk.Response;
        if (!chunk.Done)
        {
            return string.IsNullOrEmpty(text) ? null : GenerationChunk.Token(text);
        }

        var usage = chunk.PromptEvalCount is null && chunk.EvalCount is null
            ? null
            // Ollama leaves prompt_eval_count out when the whole prompt came from its cache.
            : new GenerationUsage(chunk.PromptEvalCount ?? 0, chunk.EvalCount ?? 0);
        var done = GenerationChunk.Done(chunk.DoneReason ?? "stop", usage);
        if (string.IsNullOrEmpty(text))
        {
            return done;
        }

        _pendingDone = done;
        return GenerationChunk.Token(text);
    }

    private static GenerationChunk Failed(BackendFailure failure, string message) =>
        GenerationChunk.Failed(new BackendError(failure, message));
}
