using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Requests;

/// <summary>What a caller asks to run, whatever API it came through.</summary>
internal sealed record ChatAsk(string Owner, GenerationRequest Generation, TimeSpan ReconnectGrace, TimeSpan? MaxWait);

/// <summary>The answer at the door: a live request, or a refusal to tell the caller.</summary>
internal readonly record struct Reply(LiveRequest? Request, Refusal? Refusal);

/// <summary>
/// Where every request arrives: it is admitted or refused at once, and an admitted one starts its life
/// (queue, slot, stream) detached from the connection that brought it.
/// </summary>
internal sealed class Reception(
    Scheduler scheduler, RequestRegistry registry, GenerationRunner runner, IOptions<AnteroomOptions> options, TimeProvider time)
{
    private readonly string _defaultModel = options.Value.DefaultModel ?? options.Value.Backends[0].Models[0];

    public string DefaultModel => _defaultModel;

    public TimeSpan MaxReconnectGrace { get; } = TimeSpan.FromSeconds(options.Value.Stream.MaxReconnectGraceSeconds);

    public Reply Admit(ChatAsk ask)
    {
        var generation = ask.Generation;
        var admission = scheduler.Admit(new TicketRequest
        {
            Id = RequestRegistry.NewId(),
            Owner = ask.Owner,
            Model = generation.Model,
            PromptTokens = EstimatePromptTokens(generation.Messages),
            MaxOutputTokens = generation.MaxOutputTokens,
            MaxWait = ask.MaxWait,
        });
        if (!admission.IsAdmitted)
        {
            return new Reply(null, admission.Refusal);
        }

        var grace = ask.ReconnectGrace < MaxReconnectGrace ? ask.ReconnectGrace : MaxReconnectGrace;
        var request = new LiveRequest(admission.Ticket, generation, grace, time);
        registry.Add(request);
        _ = runner.RunAsync(request);
        return new Reply(request, null);
    }

    /// <summary>About four characters a token, plus a little per message for the chat template.</summary>
    internal static int EstimatePromptTokens(IReadOnlyList<ChatMessage> messages)
    {
        long characters = 0;
        foreach (var message in messages)
        {
            characters += message.Content.Length;
        }

        return (int)Math.Min(int.MaxValue, (characters / 4) + (4 * messages.Count));
    }
}
