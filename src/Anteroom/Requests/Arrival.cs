using Anteroom.Backends;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>Which API a request came through: how its results are written back, and whether bytes can be relayed.</summary>
internal enum ClientProtocol
{
    Native,
    OpenAI,
    Ollama,
}

/// <summary>
/// A drop-in request's original body, relayed when its backend speaks the client's protocol: unchanged but for its
/// output-length fields, held to the cap in place.
/// </summary>
internal sealed record RelayPayload(string Path, byte[] Body, bool Streaming);

/// <summary>The conversation a native chat continues, and the new message it adds.</summary>
internal sealed record ConversationTurn(string Id, string Message)
{
    /// <summary>Whether the message is stored already: by the replica that admitted a request another one took over.</summary>
    public bool UserMessageStored { get; init; }
}

/// <summary>What a caller asks to run, whatever API it came through.</summary>
internal sealed record Arrival(Caller Caller, GenerationRequest Generation)
{
    public ClientProtocol Protocol { get; init; } = ClientProtocol.Native;

    /// <summary>The body to relay to a backend of the same protocol; null translates always.</summary>
    public RelayPayload? Relay { get; init; }

    /// <summary>Texts to embed: an embedding request instead of a generation.</summary>
    public IReadOnlyList<string>? EmbeddingInputs { get; init; }

    /// <summary>How long the request survives with no client connected, to be resumed.</summary>
    public TimeSpan ReconnectGrace { get; init; }

    /// <summary>How long it may wait for a slot, if shorter than the configured limit.</summary>
    public TimeSpan? MaxWait { get; init; }

    /// <summary>The stored conversation this message belongs to; its answer is appended when it ends.</summary>
    public ConversationTurn? Conversation { get; init; }

    /// <summary>The tokens its rate limit holds for it until it ends.</summary>
    public int ReservedTokens { get; init; }

    /// <summary>
    /// This arrival without what only running it needed: the prompt, the body to relay and the texts to embed. An
    /// ended request is kept for its replay window (minutes), and a long prompt held that long would cost more memory
    /// than everything else about the request together.
    /// </summary>
    public Arrival WithoutPayload() => this with
    {
        Generation = new GenerationRequest { Model = Generation.Model, Kind = Generation.Kind, Messages = [] },
        Relay = null,
        EmbeddingInputs = null,
        Conversation = Conversation is { } turn ? turn with { Message = "" } : null,
    };
}

/// <summary>A request turned away at the door: the status, a stable code, what to tell the caller, and when to retry.</summary>
internal sealed record Denial(int Status, string Code, string Message, TimeSpan? RetryAfter = null, string? Field = null)
{
    public static Denial Of(Refusal refusal) => new(
        refusal.Reason switch
        {
            RefusalReason.QueueFull or RefusalReason.UserQueueFull or RefusalReason.UserInFlightLimit => StatusCodes.Status429TooManyRequests,
            RefusalReason.UnknownModel => StatusCodes.Status404NotFound,
            RefusalReason.DuplicateId => StatusCodes.Status409Conflict,
            _ => StatusCodes.Status503ServiceUnavailable,
        },
        CodeOf(refusal.Reason),
        refusal.Message,
        refusal.RetryAfter,
        refusal.Reason == RefusalReason.UnknownModel ? "model" : null);

    public static string CodeOf(RefusalReason reason) => reason switch
    {
        RefusalReason.QueueFull => "queue_full",
        RefusalReason.UserQueueFull => "user_queue_full",
        RefusalReason.UserInFlightLimit => "user_in_flight_limit",
        RefusalReason.UnknownModel => "model_not_found",
        RefusalReason.NoHealthyBackend => "no_healthy_backend",
        RefusalReason.WaitTooLong => "wait_too_long",
        RefusalReason.DuplicateId => "duplicate_id",
        _ => "refused",
    };
}

/// <summary>
/// The answer at the door: a live request and the hold of the connection that brought it, or a denial to tell the
/// caller; and the caller's rate-limit state. The caller disposes <see cref="Hold"/> when its handler ends.
/// </summary>
internal readonly record struct Reply(LiveRequest? Request, LiveRequest.Attachment? Hold, Denial? Denial, RateState? Rates);
