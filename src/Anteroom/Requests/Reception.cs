using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Scheduling;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

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
internal sealed record ConversationTurn(string Id, string Message);

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

/// <summary>
/// Where every request arrives: the caller's tier is applied (models, output length, requests and tokens per
/// minute, then the queue's own limits with the tier's weight), and the request is admitted or refused at once.
/// An admitted one lives apart from the connection that brought it — which holds it from the first moment, so a
/// client that leaves at any point after admission stops it (or starts its reconnect grace) — and is handed to
/// <see cref="RequestLife"/>, which runs it and ends it.
/// </summary>
internal sealed class Reception(
    IRequestQueue queue,
    Gateway.BackendPool pool,
    IRequestRegistry registry,
    IEventLogFactory eventLogs,
    RequestLife life,
    IRateLimiter rates,
    IRequestLog requestLog,
    RequestAccessLog accessLog,
    Admin.IRequestMetrics metrics,
    IOptions<AnteroomOptions> options,
    TimeProvider time)
{
    private readonly string _defaultModel = options.Value.DefaultModel ?? options.Value.Backends[0].Models[0];
    private readonly int _assumedOutputTokens = (int)Math.Ceiling(options.Value.Estimates.OutputTokens);
    private readonly RefusalLogBudget _refusalLog = new(options.Value.Data.MaxRefusalsLoggedPerUserPerMinute, time);
    private readonly int _outputCeiling = options.Value.Queue.MaxOutputTokens;
    private readonly long _maxBufferedBytes = options.Value.Stream.MaxBufferedBytes;

    public string DefaultModel => _defaultModel;

    public TimeSpan MaxReconnectGrace { get; } = TimeSpan.FromSeconds(options.Value.Stream.MaxReconnectGraceSeconds);

    /// <summary>
    /// Admits or refuses the request. It takes no cancellation token: an admission torn half-way would leave a
    /// ticket in the queue with nobody to hold it, while a client that leaves right after is seen by the hold
    /// taken at once.
    /// </summary>
    public async ValueTask<Reply> AdmitAsync(Arrival ask)
    {
        var caller = ask.Caller;
        var tier = caller.Tier;
        string id = IRequestRegistry.NewId();
        var limit = new RateLimit(tier.RequestsPerMinute, tier.TokensPerMinute);
        if (TierDenial(ask, _outputCeiling) is { } denial)
        {
            return Refuse(id, ask, denial, await rates.GetStateAsync(caller.Owner, limit));
        }

        // The reservation follows what was asked (or the tier's cap), not the ceiling: a request that sets no limit
        // is expected to be of typical length, and the ceiling only keeps it from running on without end.
        int? reservedOutput = ask.Generation.MaxOutputTokens ?? tier.MaxOutputTokens;
        ask = WithOutputLimit(ask, _outputCeiling);
        var generation = ask.Generation;
        bool embedding = ask.EmbeddingInputs is not null;
        int promptTokens = EstimatePromptTokens(generation, ask.EmbeddingInputs);
        int reserved = (int)Math.Min(int.MaxValue, promptTokens + (embedding ? 0L : Math.Min(reservedOutput ?? _assumedOutputTokens, generation.MaxOutputTokens ?? int.MaxValue)));

        var decision = await rates.TryAcquireAsync(caller.Owner, limit, reserved);
        if (!decision.Allowed)
        {
            return Refuse(id, ask, RateDenial(decision, tier), decision.State);
        }

        var admission = await queue.AdmitAsync(new TicketRequest
        {
            Id = id,
            Owner = caller.Owner,
            Model = generation.Model,
            Weight = tier.Weight,
            MaxInFlight = tier.MaxInFlight,
            MaxWaiting = tier.MaxWaiting,
            PromptTokens = promptTokens,
            // An embedding generates nothing: it costs its input and one short service.
            MaxOutputTokens = embedding ? 1 : generation.MaxOutputTokens,
            MaxWait = ask.MaxWait,
        });
        if (!admission.IsAdmitted)
        {
            await rates.ReleaseAsync(caller.Owner, limit, reserved);
            var refused = Denial.Of(admission.Refusal);
            if (admission.Refusal.Reason == RefusalReason.NoHealthyBackend)
            {
                // The scheduler knows no circuits; the pool knows when the first trial is due.
                refused = refused with { RetryAfter = pool.RetryAfterNoHealthyBackend(generation.Model) };
            }

            return Refuse(id, ask, refused, await rates.GetStateAsync(caller.Owner, limit));
        }

        var grace = ask.ReconnectGrace < MaxReconnectGrace ? ask.ReconnectGrace : MaxReconnectGrace;
        // A non-streaming relayed answer is written from its whole log once it ends, so its log keeps everything;
        // the output ceiling bounds it. Every other log is a stream's, bounded for a reader that falls behind.
        // A whole relayed answer is kept whole: its client needs all of it, so nothing may be dropped. It is bounded
        // all the same — the backend client refuses an answer over MaxAnswerBytes, and the queue events before it
        // are bounded by the longest wait at one per PositionUpdateMilliseconds.
        long buffer = ask.Relay is { Streaming: false } ? long.MaxValue : _maxBufferedBytes;
        var request = new LiveRequest(admission.Ticket, ask with { ReconnectGrace = grace, ReservedTokens = reserved }, time, eventLogs.Create(id, buffer));
        // Held before anything can await: a hold taken later (when the answer starts) misses a client that leaves
        // in between, and then nothing ever detaches, so the ticket would wait on with nobody to answer.
        var hold = request.Attach();
        await registry.AddAsync(request);
        life.Start(request, limit);
        return new Reply(request, hold, null, decision.State);
    }

    private Reply Refuse(string id, Arrival ask, Denial denial, RateState? state)
    {
        var caller = ask.Caller;
        // The console gets the refusals the request log gets: a caller hammering at a limit is not a line per try.
        if (_refusalLog.TryTake(caller.Owner))
        {
            var entry = new RequestLogEntry(
                id, time.GetUtcNow(), caller.Owner, caller.KeyId, caller.TierName, RequestSettlement.ApiName(ask.Protocol), ask.Generation.Model,
                null, "refused", denial.Code, 0, null, 0, 0, 0);
            requestLog.Record(entry);
            accessLog.Refused(entry);
        }

        metrics.Refused(denial.Code);
        return new Reply(null, null, denial, state);
    }

    /// <summary>A model outside the caller's tier: 403, whether it exists or not.</summary>
    public static Denial? ModelDenial(Caller caller, string model) => caller.MayUse(model)
        ? null
        : new Denial(StatusCodes.Status403Forbidden, "model_not_allowed",
            $"Your tier '{caller.TierName}' may not use model '{model}'; it may use: {string.Join(", ", caller.Tier.Models)}.", Field: "model");

    /// <summary>
    /// What the tier forbids outright: a model outside its list, or a longer answer than it (or the gateway's
    /// output ceiling) allows.
    /// </summary>
    private static Denial? TierDenial(Arrival ask, int ceiling)
    {
        var caller = ask.Caller;
        if (ModelDenial(caller, ask.Generation.Model) is { } denial)
        {
            return denial;
        }

        int cap = OutputCap(caller.Tier, ceiling);
        if (ask.EmbeddingInputs is null && ask.Generation.MaxOutputTokens is { } asked && asked > cap)
        {
            string allows = caller.Tier.MaxOutputTokens is { } tierCap && tierCap <= ceiling ? $"tier '{caller.TierName}' allows" : "this gateway allows";
            return new Denial(StatusCodes.Status400BadRequest, "max_tokens_too_large",
                $"The request asks for up to {asked} output tokens; {allows} at most {cap}.",
                Field: ask.Protocol == ClientProtocol.Ollama ? "num_predict" : "max_tokens");
        }

        return null;
    }

    /// <summary>The tier's output cap under the gateway's ceiling: no answer is unbounded, whatever the tier.</summary>
    private static int OutputCap(TierOptions tier, int ceiling) => Math.Min(tier.MaxOutputTokens ?? ceiling, ceiling);

    /// <summary>
    /// The output limit holds on whichever path the request runs: a request that sets none (or Ollama's unlimited
    /// -1 and -2) gets the tier's cap, or the gateway's ceiling, and a relayed body has every output-length field it
    /// carries (whichever one its backend reads) held to it.
    /// </summary>
    private static Arrival WithOutputLimit(Arrival ask, int ceiling)
    {
        if (ask.EmbeddingInputs is not null)
        {
            return ask;
        }

        int cap = OutputCap(ask.Caller.Tier, ceiling);
        return ask with
        {
            Generation = ask.Generation with { MaxOutputTokens = Math.Min(ask.Generation.MaxOutputTokens ?? cap, cap) },
            Relay = ask.Relay is { } relay ? relay with { Body = WithMaxTokens(relay.Body, ask.Protocol, cap) } : null,
        };
    }

    /// <summary>
    /// The relayed body with its output length held to <paramref name="cap"/> in every field backends read, spliced
    /// into the client's bytes (see <see cref="OutputLengthSplice"/>); the body itself when it is already held.
    /// </summary>
    internal static byte[] WithMaxTokens(byte[] body, ClientProtocol protocol, int cap) => OutputLengthSplice.Apply(body, protocol, cap);

    private static Denial RateDenial(RateDecision decision, TierOptions tier)
    {
        bool requests = decision.Limit == IRateLimiter.RequestsPerMinute;
        string message = requests
            ? $"You have used your {tier.RequestsPerMinute} requests per minute; try again in {Seconds(decision.RetryAfter)}."
            : $"You have used your {tier.TokensPerMinute} tokens per minute; try again in {Seconds(decision.RetryAfter)}.";
        return new Denial(StatusCodes.Status429TooManyRequests, requests ? "requests_per_minute_limit" : "tokens_per_minute_limit", message, decision.RetryAfter);
    }

    private static string Seconds(TimeSpan span) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Math.Max(0.1, Math.Ceiling(span.TotalSeconds * 10) / 10):0.#} s");

    /// <summary>About four characters a token, plus a little per message for the chat template.</summary>
    internal static int EstimatePromptTokens(GenerationRequest generation, IReadOnlyList<string>? embeddingInputs)
    {
        long characters = (generation.Prompt?.Length ?? 0) + (generation.System?.Length ?? 0);
        int pieces = generation.Messages.Count;
        foreach (var message in generation.Messages)
        {
            characters += message.Content.Length;
        }

        if (embeddingInputs is not null)
        {
            pieces = embeddingInputs.Count;
            foreach (var input in embeddingInputs)
            {
                characters += input.Length;
            }
        }

        return (int)Math.Min(int.MaxValue, (characters / 4) + (4 * pieces));
    }
}
