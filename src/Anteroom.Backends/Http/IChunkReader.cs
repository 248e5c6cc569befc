namespace Anteroom.Backends.Http;

/// <summary>Turns a successful streaming response body into generation chunks.</summary>
internal interface IChunkReader : IAsyncDisposable
{
    /// <summary>
    /// Reads up to the next chunk. Protocol-level endings (done, in-stream error, garbage, a missing end marker)
    /// come back as chunks; transport failures and cancellation are thrown for the caller to classify.
    /// </summary>
    ValueTask<GenerationChunk> ReadAsync(CancellationToken cancellationToken);
}
