namespace Anteroom.Backends.Http;

/// <summary>
/// How one protocol's responses split into frames and what each frame means, for a relay that passes the bytes on
/// unchanged. One instance serves one response: finding frame ends is incremental and a stream's usage and finish
/// reason build up over its frames.
/// </summary>
internal interface IRelayFraming
{
    /// <summary>
    /// The length of the frame at the start of <paramref name="pending"/>, terminator included; 0 when it is not
    /// complete yet. Until it answers non-zero it is asked again about the same frame with more bytes after it, and
    /// does not scan again what it has seen.
    /// </summary>
    int FindFrameEnd(ReadOnlySpan<byte> pending);

    /// <summary>What a complete frame means; never <see cref="FrameKind.Truncated"/>.</summary>
    FrameVerdict Inspect(ReadOnlySpan<byte> frame);

    /// <summary>
    /// What the bytes left when the stream ended mean: possibly empty, never a complete frame. Only an end marker or
    /// an error counts; anything else says the stream was cut short.
    /// </summary>
    FrameVerdict InspectTail(ReadOnlySpan<byte> tail);

    /// <summary>What a whole non-streaming body means: an end with its usage, an error or garbage.</summary>
    FrameVerdict InspectBody(ReadOnlySpan<byte> body);
}

internal enum FrameKind
{
    /// <summary>An ordinary frame, relayed: content, metadata, a comment or a blank line.</summary>
    Data,

    /// <summary>The protocol's end marker, relayed; nothing after it is read.</summary>
    End,

    /// <summary>An error the backend reported in the stream, relayed; the stream is read on to its end.</summary>
    Error,

    /// <summary>Not this protocol; not relayed.</summary>
    Invalid,

    /// <summary>Bytes cut off by the end of the stream; not relayed.</summary>
    Truncated,
}

internal readonly record struct FrameVerdict(
    FrameKind Kind, int ContentPieces = 0, GenerationUsage? Usage = null, string? FinishReason = null, string? Message = null)
{
    public static FrameVerdict Data(int contentPieces) => new(FrameKind.Data, contentPieces);

    public static FrameVerdict End(int contentPieces, GenerationUsage? usage, string? finishReason) =>
        new(FrameKind.End, contentPieces, usage, finishReason);

    public static FrameVerdict Error(string message) => new(FrameKind.Error, Message: message);

    public static FrameVerdict Invalid(string message) => new(FrameKind.Invalid, Message: message);

    public static FrameVerdict Truncated(string message) => new(FrameKind.Truncated, Message: message);
}
