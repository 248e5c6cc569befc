namespace Anteroom.Backends;

/// <summary>The wire protocol a model server speaks.</summary>
public enum BackendProtocol
{
    /// <summary>Ollama's native API (<c>/api/chat</c>, NDJSON streams).</summary>
    Ollama,

    /// <summary>The OpenAI-compatible API (<c>/v1/chat/completions</c>, SSE streams), as vLLM, llama.cpp and TGI serve it.</summary>
    OpenAI,
}

/// <summary>One message of a chat.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>A chat generation to run on a model server, independent of the protocol that carries it.</summary>
public sealed record GenerationRequest
{
    /// <summary>The model name as the backend knows it.</summary>
    public required string Model { get; init; }

    /// <summary>The conversation so far, oldest first.</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>Upper bound on generated tokens (<c>num_predict</c> / <c>max_tokens</c>); null leaves it to the backend.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>Sampling temperature; null leaves it to the backend.</summary>
    public double? Temperature { get; init; }
}

/// <summary>Token counts of one generation.</summary>
public sealed record GenerationUsage(int PromptTokens, int CompletionTokens)
{
    /// <summary>Prompt plus completion tokens.</summary>
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>Why talking to a backend failed.</summary>
public enum BackendFailure
{
    /// <summary>No connection could be made (refused, DNS, TLS).</summary>
    Unreachable,

    /// <summary>The backend answered with an error status before streaming.</summary>
    ErrorStatus,

    /// <summary>The backend said it is busy (Ollama's full queue, HTTP 503/429).</summary>
    Busy,

    /// <summary>The backend reported an error inside the stream.</summary>
    StreamError,

    /// <summary>No data arrived within the idle timeout.</summary>
    Stalled,

    /// <summary>The connection closed before the stream's end marker.</summary>
    Disconnected,

    /// <summary>The backend sent something that does not parse as its protocol.</summary>
    ProtocolViolation,
}

/// <summary>A failure reported by a model server or met while talking to it.</summary>
public sealed record BackendError(BackendFailure Failure, string Message, int? StatusCode = null);

/// <summary>What kind of element a <see cref="GenerationChunk"/> is.</summary>
public enum GenerationChunkKind
{
    /// <summary>A piece of generated text.</summary>
    Token,

    /// <summary>The generation finished normally; always the last chunk.</summary>
    Done,

    /// <summary>The generation failed; always the last chunk.</summary>
    Error,
}

/// <summary>
/// One element of a generation stream. A stream is zero or more <see cref="GenerationChunkKind.Token"/> chunks
/// followed by exactly one <see cref="GenerationChunkKind.Done"/> or <see cref="GenerationChunkKind.Error"/>.
/// </summary>
public readonly record struct GenerationChunk
{
    private GenerationChunk(GenerationChunkKind kind, string? text, string? finishReason, GenerationUsage? usage, BackendError? error)
    {
        Kind = kind;
        Text = text;
        FinishReason = finishReason;
        Usage = usage;
        Error = error;
    }

    /// <summary>The element's kind.</summary>
    public GenerationChunkKind Kind { get; }

    /// <summary>The generated text of a token chunk.</summary>
    public string? Text { get; }

    /// <summary><c>stop</c>, <c>length</c> or another reason the backend gave, on a done chunk.</summary>
    public string? FinishReason { get; }

    /// <summary>Token counts on a done chunk, when the backend reported them.</summary>
    public GenerationUsage? Usage { get; }

    /// <summary>The failure on an error chunk.</summary>
    public BackendError? Error { get; }

    /// <summary>A token chunk.</summary>
    public static GenerationChunk Token(string text) => new(GenerationChunkKind.Token, text, null, null, null);

    /// <summary>The final chunk of a generation that finished.</summary>
    public static GenerationChunk Done(string finishReason, GenerationUsage? usage) =>
        new(GenerationChunkKind.Done, null, finishReason, usage, null);

    /// <summary>The final chunk of a generation that failed.</summary>
    public static GenerationChunk Failed(BackendError error) => new(GenerationChunkKind.Error, null, null, null, error);
}

/// <summary>A client of one model server.</summary>
public interface IModelServerClient
{
    /// <summary>The protocol this client speaks.</summary>
    BackendProtocol Protocol { get; }

    /// <summary>
    /// Streams one chat generation. Backend failures arrive as a final <see cref="GenerationChunkKind.Error"/> chunk,
    /// never as exceptions; only cancellation through <paramref name="cancellationToken"/> throws, and it aborts
    /// the upstream HTTP call at once so the backend stops generating.
    /// </summary>
    IAsyncEnumerable<GenerationChunk> StreamChatAsync(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>The models the server has, or the failure met asking for them (used as the health probe).</summary>
    Task<ModelListResult> ListModelsAsync(CancellationToken cancellationToken = default);
}

/// <summary>The answer to a model listing: the names, or why there are none.</summary>
public sealed record ModelListResult(IReadOnlyList<string> Models, BackendError? Error)
{
    /// <summary>Whether the server answered.</summary>
    public bool IsSuccess => Error is null;
}

/// <summary>Settings shared by every model-server client.</summary>
public sealed class ModelServerClientOptions
{
    /// <summary>A stream that sends nothing for this long is abandoned as stalled.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The clock behind the idle timeout.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
