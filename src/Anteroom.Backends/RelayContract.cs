namespace Anteroom.Backends;

/// <summary>A client's request to pass to a backend of the client's own protocol, unchanged.</summary>
/// <param name="Path">
/// The route relative to the backend's base address, without a leading slash: <c>api/chat</c>,
/// <c>v1/chat/completions</c>, <c>api/embed</c>. It is sent as a POST with <c>Content-Type: application/json</c>.
/// </param>
/// <param name="Body">The client's JSON body, sent as it is.</param>
/// <param name="Streaming">
/// Whether the client asked for a stream. The response's own <c>Content-Type</c> wins when it names a stream
/// (<c>text/event-stream</c>, <c>application/x-ndjson</c>) or a single body (<c>application/json</c>), so a
/// misjudged flag neither buffers a stream nor breaks a body into frames.
/// </param>
public sealed record RelayRequest(string Path, ReadOnlyMemory<byte> Body, bool Streaming);

/// <summary>What kind of element a <see cref="RelayChunk"/> is.</summary>
public enum RelayChunkKind
{
    /// <summary>The backend's status and content type; the first chunk of every response.</summary>
    Head,

    /// <summary>Bytes of the response body, to pass on verbatim.</summary>
    Data,

    /// <summary>The backend finished the response normally; always the last chunk.</summary>
    Done,

    /// <summary>The exchange failed; always the last chunk.</summary>
    Failed,
}

/// <summary>
/// One element of a relayed response. When the backend answered: one <see cref="RelayChunkKind.Head"/>, zero or
/// more <see cref="RelayChunkKind.Data"/>, then exactly one <see cref="RelayChunkKind.Done"/> or
/// <see cref="RelayChunkKind.Failed"/>. When it did not (refused, stalled before the headers): a lone
/// <see cref="RelayChunkKind.Failed"/>.
/// </summary>
/// <remarks>
/// <para>
/// An error status (anything but 2xx) comes as its head, one data chunk with the whole error body (possibly empty)
/// and a failure with <see cref="ErrorWasRelayed"/> set. A stream comes as data chunks that each end on a frame
/// boundary — whole NDJSON lines, whole SSE events — so each can be written and flushed as it is; a chunk holds
/// several frames when they arrived together. A single body comes as one data chunk. A frame the backend cut off or
/// garbled is not relayed: the stream then ends with a failure whose <see cref="ErrorWasRelayed"/> is false, and
/// the client has seen only whole frames, so the gateway can still end the stream its own way.
/// </para>
/// <para>
/// <see cref="Bytes"/> may point into a pooled buffer: it is valid only until the enumerator moves on. Copy it
/// to keep it.
/// </para>
/// </remarks>
public readonly record struct RelayChunk
{
    private RelayChunk(
        RelayChunkKind kind,
        int statusCode = 0,
        string? contentType = null,
        ReadOnlyMemory<byte> bytes = default,
        int contentPieces = 0,
        GenerationUsage? usage = null,
        string? finishReason = null,
        BackendError? error = null,
        bool errorWasRelayed = false)
    {
        Kind = kind;
        StatusCode = statusCode;
        ContentType = contentType;
        Bytes = bytes;
        ContentPieces = contentPieces;
        Usage = usage;
        FinishReason = finishReason;
        Error = error;
        ErrorWasRelayed = errorWasRelayed;
    }

    /// <summary>The element's kind.</summary>
    public RelayChunkKind Kind { get; }

    /// <summary>The backend's HTTP status, on a head chunk.</summary>
    public int StatusCode { get; }

    /// <summary>The backend's <c>Content-Type</c> header as it sent it (charset included), on a head chunk; null when it sent none.</summary>
    public string? ContentType { get; }

    /// <summary>The bytes to relay verbatim, on a data chunk; valid only until the enumerator moves on.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>
    /// How many pieces of generated text (tokens, as the backend streams them) a data chunk carries: stream frames
    /// with non-empty content. For a single body it is the completion token count the body reports, else 0.
    /// </summary>
    public int ContentPieces { get; }

    /// <summary>Token counts on a done chunk, when the backend reported them (embeddings: prompt tokens only).</summary>
    public GenerationUsage? Usage { get; }

    /// <summary><c>stop</c>, <c>length</c> or another reason the backend gave, on a done chunk; null when it gave none.</summary>
    public string? FinishReason { get; }

    /// <summary>The failure on a failed chunk.</summary>
    public BackendError? Error { get; }

    /// <summary>
    /// On a failed chunk: whether the relayed bytes already told the client, in its own protocol (an error status
    /// with its body, an in-stream error frame). When false, the client has seen no error and the gateway must
    /// express one.
    /// </summary>
    public bool ErrorWasRelayed { get; }

    /// <summary>The first chunk of a response: the backend's status and content type.</summary>
    public static RelayChunk Head(int statusCode, string? contentType) => new(RelayChunkKind.Head, statusCode, contentType);

    /// <summary>Body bytes to relay, carrying <paramref name="contentPieces"/> pieces of generated text.</summary>
    public static RelayChunk Data(ReadOnlyMemory<byte> bytes, int contentPieces = 0) =>
        new(RelayChunkKind.Data, bytes: bytes, contentPieces: contentPieces);

    /// <summary>The final chunk of a response the backend finished.</summary>
    public static RelayChunk Done(GenerationUsage? usage, string? finishReason) =>
        new(RelayChunkKind.Done, usage: usage, finishReason: finishReason);

    /// <summary>The final chunk of an exchange that failed.</summary>
    public static RelayChunk Failed(BackendError error, bool errorWasRelayed = false) =>
        new(RelayChunkKind.Failed, error: error, errorWasRelayed: errorWasRelayed);
}
