using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.Ollama;

/// <summary>
/// Ollama's NDJSON for a relay: a frame is one line with its <c>\n</c>; a line with text in <c>message.content</c>
/// or <c>response</c> is one piece; <c>done:true</c> ends the stream and carries the counts; an <c>error</c> line
/// is the backend giving up, after which it closes the stream.
/// </summary>
internal sealed class OllamaRelayFraming : IRelayFraming
{
    private const string MissingDone = "The stream ended without a done:true line.";

    // Bytes of the current line already known to hold no '\n', so a line arriving in pieces is scanned once.
    private int _scanned;

    public int FindFrameEnd(ReadOnlySpan<byte> pending)
    {
        var newline = pending[_scanned..].IndexOf((byte)'\n');
        if (newline < 0)
        {
            _scanned = pending.Length;
            return 0;
        }

        var length = _scanned + newline + 1;
        _scanned = 0;
        return length;
    }

    public FrameVerdict Inspect(ReadOnlySpan<byte> frame) => InspectLine(frame, tail: false);

    // Ollama ends every line with '\n', but a last line without one is still whole if it parses.
    public FrameVerdict InspectTail(ReadOnlySpan<byte> tail) => InspectLine(tail, tail: true);

    public FrameVerdict InspectBody(ReadOnlySpan<byte> body)
    {
        if (!TryParse(body, out var answer))
        {
            return FrameVerdict.Invalid($"Not an Ollama response: {BackendErrorText.Preview(body.Trim(" \t\r\n"u8))}");
        }

        if (answer.Error is { } error)
        {
            return FrameVerdict.Error(BackendErrorText.FromErrorValue(error));
        }

        var usage = Usage(answer);
        return FrameVerdict.End(usage?.CompletionTokens ?? 0, usage, answer.DoneReason);
    }

    private static FrameVerdict InspectLine(ReadOnlySpan<byte> line, bool tail)
    {
        line = line.Trim(" \t\r\n"u8);
        if (line.IsEmpty)
        {
            // Blank lines are relayed as they came: the client would have seen them from Ollama too.
            return tail ? FrameVerdict.Truncated(MissingDone) : FrameVerdict.Data(0);
        }

        if (!tail && IsPlainToken(line))
        {
            return FrameVerdict.Data(1);
        }

        if (!TryParse(line, out var chunk))
        {
            return tail
                ? FrameVerdict.Truncated("The stream ended in the middle of a line.")
                : FrameVerdict.Invalid($"Not an Ollama chunk: {BackendErrorText.Preview(line)}");
        }

        if (chunk.Error is { } error)
        {
            return FrameVerdict.Error(BackendErrorText.FromErrorValue(error));
        }

        var pieces = chunk.Message?.HasContent == true || chunk.HasResponse ? 1 : 0;
        if (chunk.Done)
        {
            return FrameVerdict.End(pieces, Usage(chunk), chunk.DoneReason);
        }

        return tail ? FrameVerdict.Truncated(MissingDone) : FrameVerdict.Data(pieces);
    }

    /// <summary>
    /// A line that only carries text (see <see cref="TokenChunkScan"/>): not done, no error, and text in
    /// <c>message.content</c> (chat) or <c>response</c> (generate).
    /// </summary>
    internal static bool IsPlainToken(ReadOnlySpan<byte> line) =>
        line.IndexOf("\"done\":false"u8) >= 0
        && line.IndexOf("\"error\""u8) < 0
        && (TokenChunkScan.HasText(line, "\"content\":\""u8) || TokenChunkScan.HasText(line, "\"response\":\""u8));

    private static bool TryParse(ReadOnlySpan<byte> json, out OllamaRelayLine line)
    {
        try
        {
            line = JsonSerializer.Deserialize(json, OllamaJsonContext.Default.OllamaRelayLine);
            return true;
        }
        catch (JsonException)
        {
            line = default;
            return false;
        }
    }

    // Ollama leaves prompt_eval_count out when the whole prompt came from its cache.
    private static GenerationUsage? Usage(OllamaRelayLine line) => line.PromptEvalCount is null && line.EvalCount is null
        ? null
        : new GenerationUsage(line.PromptEvalCount ?? 0, line.EvalCount ?? 0);
}
