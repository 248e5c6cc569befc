using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Requests;

/// <summary>Which API a request came through: how its results are written back, and whether bytes can be relayed.</summary>
internal enum ClientProtocol
{
    Native,
    OpenAI,
    Ollama,
}

/// <summary>A drop-in request's original body, relayed unchanged when its backend speaks the client's protocol.</summary>
internal sealed record RelayPayload(string Path, byte[] Body, bool Streaming);

/// <summary>What a caller asks to run, whatever API it came through.</summary>
internal sealed record Arrival(string Owner, GenerationRequest Generation)
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
}

/// <summary>
/// The answer at the door: a live request and the hold of the connection that brought it, or a refusal to tell the
/// caller. The caller disposes <see cref="Hold"/> when that connection's handler ends.
/// </summary>
internal readonly record struct Reply(LiveRequest? Request, LiveRequest.Attachment? Hold, Refusal? Refusal);

/// <summary>
/// Where every request arrives: it is admitted or refused at once, and an admitted one starts its life
/// (queue, slot, stream) apart from the connection that brought it — which holds it from the first moment, so
/// a client that leaves at any point after admission stops it (or starts its reconnect grace).
/// </summary>
internal sealed class Reception(
    Scheduler scheduler, RequestRegistry registry, GenerationRunner runner, IOptions<AnteroomOptions> options, TimeProvider time)
{
    private readonly string _defaultModel = options.Value.DefaultModel ?? options.Value.Backends[0].Models[0];

    public string DefaultModel => _defaultModel;

    public TimeSpan MaxReconnectGrace { get; } = TimeSpan.FromSeconds(options.Value.Stream.MaxReconnectGraceSeconds);

    public Reply Admit(Arrival ask)
    {
        var generation = ask.Generation;
        var admission = scheduler.Admit(new TicketRequest
        {
            Id = RequestRegistry.NewId(),
            Owner = ask.Owner,
            Model = generation.Model,
            PromptTokens = EstimatePromptTokens(generation, ask.EmbeddingInputs),
            // An embedding generates nothing: it costs its input and one short service.
            MaxOutputTokens = ask.EmbeddingInputs is null ? generation.MaxOutputTokens : 1,
            MaxWait = ask.MaxWait,
        });
        if (!admission.IsAdmitted)
        {
            return new Reply(null, null, admission.Refusal);
        }

        var grace = ask.ReconnectGrace < MaxReconnectGrace ? ask.ReconnectGrace : MaxReconnectGrace;
        var request = new LiveRequest(admission.Ticket, ask with { ReconnectGrace = grace }, time);
        // Held before anything can await: a hold taken later (when the answer starts) misses a client that leaves
        // in between, and then nothing ever detaches, so the ticket would wait on with nobody to answer.
        var hold = request.Attach();
        registry.Add(request);
        _ = runner.RunAsync(request);
        return new Reply(request, hold, null);
    }

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
