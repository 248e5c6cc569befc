using System.Buffers;
using System.Text.Json;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.OpenAI;

/// <summary>
/// OpenAI-style SSE for a relay: a frame is one event with the blank line that ends it (LF, CRLF or CR line ends,
/// comments and other fields kept as they are); an event whose first choice has text in <c>delta.content</c> or
/// <c>text</c> is one piece; <c>data: [DONE]</c> ends the stream; <c>data: {"error":…}</c> is the backend giving
/// up, after which it still sends <c>[DONE]</c>.
/// </summary>
internal sealed class OpenAIRelayFraming : IRelayFraming
{
    private const string MissingDone = "The stream ended without data: [DONE].";

    // Bytes of the current event already scanned, and whether the scan stopped at the start of a line.
    private int _scanned;
    private bool _atLineStart = true;

    // Built up over the events: the usage chunk comes after the finish reason, both before [DONE].
    private GenerationUsage? _usage;
    private string? _finishReason;

    // Holds an event's data only when it spans several data lines, which then join with '\n'.
    private ArrayBufferWriter<byte>? _joined;

    public int FindFrameEnd(ReadOnlySpan<byte> pending)
    {
        var i = _scanned;
        while (i < pending.Length)
        {
            var lineEnd = pending[i..].IndexOfAny((byte)'\r', (byte)'\n');
            if (lineEnd < 0)
            {
                _atLineStart = false;
                i = pending.Length;
                break;
            }

            if (lineEnd > 0)
            {
                _atLineStart = false;
            }

            var at = i + lineEnd;
            int next;
            if (pending[at] == (byte)'\r')
            {
                if (at + 1 == pending.Length)
                {
                    // CR then LF may arrive apart; waiting for the next byte keeps a CRLF inside one frame.
                    i = at;
                    break;
                }

                next = pending[at + 1] == (byte)'\n' ? at + 2 : at + 1;
            }
            else
            {
                next = at + 1;
            }

            if (_atLineStart)
            {
                _scanned = 0;
                return next;
            }

            _atLineStart = true;
            i = next;
        }

        _scanned = i;
        return 0;
    }

    public FrameVerdict Inspect(ReadOnlySpan<byte> frame) => InspectEvent(frame, tail: false);

    // An event the stream ended before its blank line is not dispatched by SSE clients; only the end marker and
    // an error are still worth honouring there.
    public FrameVerdict InspectTail(ReadOnlySpan<byte> tail) => InspectEvent(tail, tail: true);

    public FrameVerdict InspectBody(ReadOnlySpan<byte> body)
    {
        if (!TryParse(body, out var answer))
        {
            return FrameVerdict.Invalid($"Not an OpenAI response: {BackendErrorText.Preview(body.Trim(" \t\r\n"u8))}");
        }

        if (answer.Error is { } error)
        {
            return FrameVerdict.Error(BackendErrorText.FromErrorValue(error));
        }

        var usage = answer.Usage is { } counts ? new GenerationUsage(counts.PromptTokens, counts.CompletionTokens) : null;
        return FrameVerdict.End(usage?.CompletionTokens ?? 0, usage, answer.FirstChoice.FinishReason);
    }

    private FrameVerdict InspectEvent(ReadOnlySpan<byte> frame, bool tail)
    {
        if (!TryGetData(frame, out var data))
        {
            // A comment, a blank line or fields without data: SSE dispatches nothing.
            return tail ? FrameVerdict.Truncated(MissingDone) : FrameVerdict.Data(0);
        }

        if (data.Trim(" \t"u8).SequenceEqual("[DONE]"u8))
        {
            return FrameVerdict.End(0, _usage, _finishReason);
        }

        if (!tail && IsPlainToken(data))
        {
            return FrameVerdict.Data(1);
        }

        if (!TryParse(data, out var chunk))
        {
            return tail
                ? FrameVerdict.Truncated("The stream ended in the middle of an event.")
                : FrameVerdict.Invalid($"Not an OpenAI chunk: {BackendErrorText.Preview(data)}");
        }

        if (chunk.Error is { } error)
        {
            return FrameVerdict.Error(BackendErrorText.FromErrorValue(error));
        }

        if (tail)
        {
            return FrameVerdict.Truncated(MissingDone);
        }

        if (chunk.Usage is { } usage)
        {
            _usage = new GenerationUsage(usage.PromptTokens, usage.CompletionTokens);
        }

        var choice = chunk.FirstChoice;
        // The reason arrives on the last content chunk or one of its own; the usage chunk may still follow.
        _finishReason = choice.FinishReason ?? _finishReason;
        return FrameVerdict.Data(choice.Delta?.HasContent == true || choice.HasText ? 1 : 0);
    }

    /// <summary>
    /// A chunk that only carries text (see <see cref="TokenChunkScan"/>): no finish reason yet, no usage, no error,
    /// and text in <c>delta.content</c> (chat) or <c>text</c> (completions).
    /// </summary>
    internal static bool IsPlainToken(ReadOnlySpan<byte> data) =>
        data.IndexOf("\"finish_reason\":null"u8) >= 0
        && data.IndexOf("\"error\""u8) < 0
        && TokenChunkScan.AbsentOrNull(data, "\"usage\":"u8)
        && (TokenChunkScan.HasText(data, "\"content\":\""u8) || TokenChunkScan.HasText(data, "\"text\":\""u8));

    // The event's data field; a single data line (the usual case) is a slice of the frame, not a copy.
    private bool TryGetData(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> data)
    {
        data = default;
        var lines = 0;
        while (!frame.IsEmpty)
        {
            var lineEnd = frame.IndexOfAny((byte)'\r', (byte)'\n');
            var line = lineEnd < 0 ? frame : frame[..lineEnd];
            frame = lineEnd < 0 ? [] : frame[(lineEnd + (frame[lineEnd..] is [(byte)'\r', (byte)'\n', ..] ? 2 : 1))..];
            if (line.IsEmpty)
            {
                break;
            }

            var colon = line.IndexOf((byte)':');
            if (colon == 0 || !(colon < 0 ? line : line[..colon]).SequenceEqual("data"u8))
            {
                continue;
            }

            var value = colon < 0 ? [] : line[(colon + 1)..];
            if (value is [(byte)' ', ..])
            {
                value = value[1..];
            }

            if (lines == 0)
            {
                data = value;
            }
            else
            {
                _joined ??= new ArrayBufferWriter<byte>();
                if (lines == 1)
                {
                    _joined.ResetWrittenCount();
                    _joined.Write(data);
                }

                _joined.Write("\n"u8);
                _joined.Write(value);
            }

            lines++;
        }

        if (lines > 1)
        {
            data = _joined!.WrittenSpan;
        }

        return lines > 0;
    }

    private static bool TryParse(ReadOnlySpan<byte> json, out OpenAIRelayEvent item)
    {
        try
        {
            item = JsonSerializer.Deserialize(json, OpenAIJsonContext.Default.OpenAIRelayEvent);
            return true;
        }
        catch (JsonException)
        {
            item = default;
            return false;
        }
    }
}
