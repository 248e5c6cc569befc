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

/// <summary>What a generation continues: a conversation or a bare prompt.</summary>
public enum GenerationKind
{
    /// <summary>A chat: Ollama's <c>/api/chat</c>, OpenAI's <c>/v1/chat/completions</c>.</summary>
    Chat,

    /// <summary>A text completion of a prompt: Ollama's <c>/api/generate</c>, OpenAI's <c>/v1/completions</c>.</summary>
    Completion,
}

/// <summary>A generation to run on a model server, independent of the protocol that carries it.</summary>
public sealed record GenerationRequest
{
    /// <summary>The model name as the backend knows it.</summary>
    public required string Model { get; init; }

    /// <summary>The conversation so far, oldest first; ignored (and may be empty) for a <see cref="GenerationKind.Completion"/>.</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>Whether this is a chat (the default) or a completion of <see cref="Prompt"/>.</summary>
    public GenerationKind Kind { get; init; } = GenerationKind.Chat;

    /// <summary>The text to continue; required for a <see cref="GenerationKind.Completion"/>, ignored for a chat.</summary>
    public string? Prompt { get; init; }

    /// <summary>
    /// The system prompt of a <see cref="GenerationKind.Completion"/> (Ollama generate's <c>system</c>). OpenAI's
    /// completions API has no such field, so that protocol does not send it; a chat carries its system prompt in
    /// <see cref="Messages"/>.
    /// </summary>
    public string? System { get; init; }

    /// <summary>Upper bound on generated tokens (<c>num_predict</c> / <c>max_tokens</c>); null leaves it to the backend.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>Sampling temperature; null leaves it to the backend.</summary>
    public double? Temperature { get; init; }

    /// <summary>Nucleus sampling (<c>top_p</c>); null leaves it to the backend.</summary>
    public double? TopP { get; init; }

    /// <summary>Seed for reproducible sampling; null leaves it to the backend.</summary>
    public int? Seed { get; init; }

    /// <summary>Sequences that end the generation when produced; null leaves it to the backend.</summary>
    public IReadOnlyList<string>? Stop { get; init; }
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

    /// <summary>
    /// A whole (non-streamed) answer was larger than the client may hold (<see cref="ModelServerClientOptions.MaxAnswerBytes"/>).
    /// What the request asked for made it so (log probabilities, echoed prompts), not the backend's health.
    /// </summary>
    TooLarge,
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
    /// Streams one generation: a chat, or a completion of a prompt when <see cref="GenerationRequest.Kind"/> says so
    /// (Ollama's <c>/api/generate</c>, OpenAI's <c>/v1/completions</c>). Backend failures arrive as a final
    /// <see cref="GenerationChunkKind.Error"/> chunk, never as exceptions; only cancellation through
    /// <paramref name="cancellationToken"/> throws, and it aborts the upstream HTTP call at once so the backend stops
    /// generating.
    /// </summary>
    /// <exception cref="ArgumentException">A completion without a <see cref="GenerationRequest.Prompt"/>.</exception>
    IAsyncEnumerable<GenerationChunk> StreamChatAsync(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Embeds <paramref name="inputs"/> with <paramref name="model"/> (Ollama's <c>/api/embed</c>, OpenAI's
    /// <c>/v1/embeddings</c>): one vector per input, in the inputs' order. Backend failures come back in
    /// <see cref="EmbeddingResult.Error"/>; only cancellation throws.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="inputs"/> is empty.</exception>
    Task<EmbeddingResult> EmbedAsync(string model, IReadOnlyList<string> inputs, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends a client's request body unchanged to <see cref="RelayRequest.Path"/> and hands back the backend's
    /// answer byte for byte, parsed only as far as needed to count the generated pieces and find the end. Meant for
    /// a client that speaks this client's <see cref="Protocol"/>: the protocol decides how the stream is framed.
    /// See <see cref="RelayChunk"/> for the sequence of chunks. Backend failures arrive as a final
    /// <see cref="RelayChunkKind.Failed"/> chunk; only cancellation through <paramref name="cancellationToken"/>
    /// throws, and it aborts the upstream HTTP call at once so the backend stops generating.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="RelayRequest.Path"/> is not a path below the base address.</exception>
    IAsyncEnumerable<RelayChunk> RelayAsync(RelayRequest request, CancellationToken cancellationToken = default);

    /// <summary>The models the server has, or the failure met asking for them (used as the health probe).</summary>
    Task<ModelListResult> ListModelsAsync(CancellationToken cancellationToken = default);
}

/// <summary>The answer to a model listing: the names, or why there are none.</summary>
public sealed record ModelListResult(IReadOnlyList<string> Models, BackendError? Error)
{
    /// <summary>Whether the server answered.</summary>
    public bool IsSuccess => Error is null;
}

/// <summary>The answer to an embedding request: one vector per input, or why there are none.</summary>
/// <param name="Vectors">One vector per input, in the inputs' order; empty on failure.</param>
/// <param name="PromptTokens">The tokens the inputs came to, as the backend counted them (0 when it did not say).</param>
/// <param name="Error">Why the backend gave no vectors; null on success.</param>
public sealed record EmbeddingResult(IReadOnlyList<float[]> Vectors, int PromptTokens, BackendError? Error)
{
    /// <summary>Whether the server answered with the vectors.</summary>
    public bool IsSuccess => Error is null;
}

/// <summary>Settings shared by every model-server client.</summary>
public sealed class ModelServerClientOptions
{
    /// <summary>A stream that sends nothing for this long is abandoned as stalled.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The clock behind the idle timeout.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>The largest whole (non-streamed) relayed answer read into memory; a larger one fails as <see cref="BackendFailure.TooLarge"/>.</summary>
    public int MaxAnswerBytes { get; set; } = 64 * 1024 * 1024;
}
