using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Requests;

/// <summary>
/// The answer of <see cref="AdmissionPolicy"/>: a ticket in the queue for the request as it will run (held to its
/// output limit, its tokens reserved), or a denial; and the caller's rate-limit state either way.
/// </summary>
internal readonly record struct AdmissionDecision(Ticket? Ticket, Arrival Arrival, RateLimit Limit, Denial? Denial, RateState? Rates);

/// <summary>
/// Whether a request may go in, decided at once: the caller's tier (its models and output length), its requests and
/// tokens per minute, then the queue's own limits with the tier's weight. A request refused after its tokens were
/// reserved has them given back.
/// </summary>
internal sealed class AdmissionPolicy(IRequestQueue queue, IBackendPool pool, IRateLimiter rates, IOptions<AnteroomOptions> options)
{
    private readonly int _assumedOutputTokens = (int)Math.Ceiling(options.Value.Estimates.OutputTokens);
    private readonly int _outputCeiling = options.Value.Queue.MaxOutputTokens;
    private readonly TimeSpan _maxReconnectGrace = TimeSpan.FromSeconds(options.Value.Stream.MaxReconnectGraceSeconds);

    /// <summary>Admits request <paramref name="id"/> into the queue, or says why not.</summary>
    public async ValueTask<AdmissionDecision> AdmitAsync(string id, Arrival ask)
    {
        var caller = ask.Caller;
        var tier = caller.Tier;
        var limit = new RateLimit(tier.RequestsPerMinute, tier.TokensPerMinute);
        if (TierDenial(ask, _outputCeiling) is { } denial)
        {
            return new(null, ask, limit, denial, await rates.GetStateAsync(caller.Owner, limit));
        }

        // The reservation follows what was asked (or the tier's cap), not the ceiling: a request that sets no limit
        // is expected to be of typical length, and the ceiling only keeps it from running on without end.
        int? reservedOutput = ask.Generation.MaxOutputTokens ?? tier.MaxOutputTokens;
        ask = OutputLimit.Apply(ask, _outputCeiling);
        var generation = ask.Generation;
        bool embedding = ask.EmbeddingInputs is not null;
        int promptTokens = EstimatePromptTokens(generation, ask.EmbeddingInputs);
        int reserved = (int)Math.Min(int.MaxValue, promptTokens + (embedding ? 0L : Math.Min(reservedOutput ?? _assumedOutputTokens, generation.MaxOutputTokens ?? int.MaxValue)));
        ask = ask with { ReservedTokens = reserved };

        var decision = await rates.TryAcquireAsync(caller.Owner, limit, reserved);
        if (!decision.Allowed)
        {
            return new(null, ask, limit, RateDenial(decision, tier), decision.State);
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
            // A chat its client may come back to outlives its replica in the queue for as long (Redis mode): another
            // replica takes it over when the client reconnects there (see Reception.AdoptAsync).
            HolderGrace = AdoptableArrival.Of(ask) is null ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(ask.ReconnectGrace.Ticks, _maxReconnectGrace.Ticks)),
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

            return new(null, ask, limit, refused, await rates.GetStateAsync(caller.Owner, limit));
        }

        return new(admission.Ticket, ask, limit, null, decision.State);
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

        int cap = OutputLimit.Cap(caller.Tier, ceiling);
        if (ask.EmbeddingInputs is null && ask.Generation.MaxOutputTokens is { } asked && asked > cap)
        {
            string allows = caller.Tier.MaxOutputTokens is { } tierCap && tierCap <= ceiling ? $"tier '{caller.TierName}' allows" : "this gateway allows";
            return new Denial(StatusCodes.Status400BadRequest, "max_tokens_too_large",
                $"The request asks for up to {asked} output tokens; {allows} at most {cap}.",
                Field: ask.Protocol == ClientProtocol.Ollama ? "num_predict" : "max_tokens");
        }

        return null;
    }

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
