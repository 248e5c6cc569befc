using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.OpenAI;

/// <summary>
/// Reads an OpenAI-style SSE chat or completion stream: <c>data:</c> events holding chunks (text in
/// <c>delta.content</c> or, for completions, <c>text</c>), an optional usage-only chunk, then <c>data: [DONE]</c>. The BCL's <see cref="SseParser"/> handles the framing — comments, other fields,
/// multi-line data, CR/LF variants — so this class only interprets event data.
/// </summary>
internal sealed class OpenAIChunkReader(Stream body, string? mediaType) : IChunkReader
{
    private IAsyncEnumerator<SseItem<OpenAIStreamEvent>>? _events;
    private string? _finishReason;
    private GenerationUsage? _usage;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<GenerationChunk> ReadAsync(CancellationToken cancellationToken)
    {
        if (_events is null)
        {
            // A 200 answer of HTML or plain JSON means the base address points at something that is not this API.
            if (mediaType is not null && !mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
            {
                return Failed(BackendFailure.ProtocolViolation, $"Expected text/event-stream, got {mediaType}.");
            }

            _events = SseParser.Create(body, ParseEvent).EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
        }

        while (await _events.MoveNextAsync().ConfigureAwait(false))
        {
            var item = _events.Current.Data;
            switch (item.Kind)
            {
                case OpenAIStreamEventKind.Done:
                    return GenerationChunk.Done(_finishReason ?? "stop", _usage);
                case OpenAIStreamEventKind.Invalid:
                    return Failed(BackendFailure.ProtocolViolation, $"Not an OpenAI chunk: {item.Preview}");
            }

            var chunk = item.Chunk;
            if (chunk.Error is { } error)
            {
                return Failed(BackendFailure.StreamError, BackendErrorText.FromErrorValue(error));
            }

            if (chunk.Usage is { } usage)
            {
                _usage = new GenerationUsage(usage.PromptTokens, usage.CompletionTokens);
            }

            if (chunk.Choices is [var choice, ..])
            {
                // The reason arrives on the last content chunk or one of its own; the usage chunk may still follow.
                _finishReason = choice.FinishReason ?? _finishReason;
                if ((choice.Delta?.Content ?? choice.Text) is { Length: > 0 } text)
                {
                    return GenerationChunk.Token(text);
                }
            }
        }

        return Failed(BackendFailure.Disconnected, "The stream ended without data: [DONE].");
    }

    public ValueTask DisposeAsync() => _events?.DisposeAsync() ?? ValueTask.CompletedTask;

    // Runs while the parser still owns the data's buffer, so the JSON is read straight from it.
    private static OpenAIStreamEvent ParseEvent(string eventType, ReadOnlySpan<byte> data)
    {
        if (data.Trim(" \t"u8).SequenceEqual("[DONE]"u8))
        {
            return new OpenAIStreamEvent(OpenAIStreamEventKind.Done);
        }

        try
        {
            return new OpenAIStreamEvent(OpenAIStreamEventKind.Chunk, JsonSerializer.Deserialize(data, OpenAIJsonContext.Default.OpenAIChatChunk));
        }
        catch (JsonException)
        {
            return new OpenAIStreamEvent(OpenAIStreamEventKind.Invalid, Preview: BackendErrorText.Preview(data));
        }
    }

    private static GenerationChunk Failed(BackendFailure failure, string message) =>
        GenerationChunk.Failed(new BackendError(failure, message));
}

internal enum OpenAIStreamEventKind
{
    Chunk,
    Done,
    Invalid,
}

internal readonly record struct OpenAIStreamEvent(OpenAIStreamEventKind Kind, OpenAIChatChunk Chunk = default, string? Preview = null);
