namespace Anteroom.Backends.Http;

/// <summary>
/// Tells an ordinary token chunk of a relayed stream by its bytes, without reading it as JSON: the token path of a
/// relay then costs a few byte searches, and only the chunks that can end, fail or count a stream (the first, the
/// last, an error, usage) go through the JSON reader.
/// </summary>
/// <remarks>
/// The searches are for a name with its quotes and colon, e.g. <c>"content":"</c>. Inside a JSON string every quote
/// is escaped (<c>\"</c>), so such a sequence cannot come from text a model wrote: its closing quote is unescaped,
/// which makes it a member name of the chunk itself. Servers write their chunks compactly (vLLM, llama.cpp, Ollama,
/// TGI); a chunk written with spaces around its colons matches nothing here and is read as JSON, as every chunk was.
/// </remarks>
internal static class TokenChunkScan
{
    /// <summary>Whether the chunk has member <paramref name="nameColonQuote"/> (e.g. <c>"content":"</c>) with non-empty text.</summary>
    public static bool HasText(ReadOnlySpan<byte> chunk, ReadOnlySpan<byte> nameColonQuote)
    {
        int at = chunk.IndexOf(nameColonQuote);
        int next = at + nameColonQuote.Length;
        return at >= 0 && next < chunk.Length && chunk[next] != (byte)'"';
    }

    /// <summary>Whether member <paramref name="nameColon"/> (e.g. <c>"usage":</c>) is absent or null.</summary>
    public static bool AbsentOrNull(ReadOnlySpan<byte> chunk, ReadOnlySpan<byte> nameColon)
    {
        int at = chunk.IndexOf(nameColon);
        return at < 0 || chunk[(at + nameColon.Length)..].StartsWith("null"u8);
    }
}
