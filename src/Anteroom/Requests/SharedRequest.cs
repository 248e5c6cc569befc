using System.Text.Json;
using System.Text.Json.Serialization;
using Anteroom.Backends;
using Anteroom.Identity;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>
/// A request another replica admitted, as the shared registry records it (<see cref="IRequestRegistry.FindElsewhereAsync"/>):
/// enough to show its status, follow its log from here, stop it, and — when its replica died while it waited — take
/// it over (<see cref="Adoption"/>).
/// </summary>
internal sealed record SharedRequest(string Id, string Owner, string Model, string Replica, DateTimeOffset CreatedAt)
{
    /// <summary>The conversation its message belongs to, if any.</summary>
    public string? ConversationId { get; init; }

    /// <summary>Whether the replica that runs it still shows signs of life.</summary>
    public bool ReplicaAlive { get; init; }

    /// <summary>How it ended, once it has.</summary>
    public SharedEnding? Ending { get; init; }

    /// <summary>What another replica needs to run it in its place; null for requests no client can come back to.</summary>
    public AdoptableArrival? Adoption { get; init; }
}

/// <summary>How a shared request ended: its state name (as the status shows it), when, and its last attempt.</summary>
internal sealed record SharedEnding(string State, DateTimeOffset EndedAt, string? Backend, int Attempts, long WaitedMs, long LastEventId)
{
    /// <summary>A ticket's state as the native status names it.</summary>
    public static string StateOf(Ticket ticket) => ticket.State switch
    {
        TicketState.Waiting => "waiting",
        TicketState.Running => "running",
        _ => ticket.Outcome switch
        {
            TicketOutcome.Completed => "completed",
            TicketOutcome.Failed => "failed",
            TicketOutcome.Cancelled => "cancelled",
            _ => "timed_out",
        },
    };
}

/// <summary>
/// What a native chat that may be resumed arrived with, kept beside its record so that another replica can run it
/// if the one that admitted it dies while it waits: the generation, its grace and wait, and its conversation. The
/// caller is not kept: only its owner, reconnecting, may take it over, and it does so as itself.
/// </summary>
internal sealed record AdoptableArrival(
    GenerationRequest Generation, double ReconnectGraceSeconds, double? MaxWaitSeconds, string? ConversationId, string? ConversationMessage, int ReservedTokens)
{
    /// <summary>What is kept of an arrival, or null when it cannot be taken over (not a native chat, or no grace).</summary>
    public static AdoptableArrival? Of(Arrival arrival) =>
        arrival.Protocol != ClientProtocol.Native || arrival.Relay is not null || arrival.EmbeddingInputs is not null || arrival.ReconnectGrace <= TimeSpan.Zero
            ? null
            : new AdoptableArrival(
                arrival.Generation,
                arrival.ReconnectGrace.TotalSeconds,
                arrival.MaxWait?.TotalSeconds,
                arrival.Conversation?.Id,
                arrival.Conversation?.Message,
                arrival.ReservedTokens);

    /// <summary>
    /// The arrival again, for <paramref name="owner"/> (its owner, come back). Its user message is already stored
    /// with its conversation by the replica that admitted it.
    /// </summary>
    public Arrival ToArrival(Caller owner) => new(owner, Generation)
    {
        ReconnectGrace = TimeSpan.FromSeconds(ReconnectGraceSeconds),
        MaxWait = MaxWaitSeconds is { } wait ? TimeSpan.FromSeconds(wait) : null,
        Conversation = ConversationId is { } id ? new ConversationTurn(id, ConversationMessage ?? "") { UserMessageStored = true } : null,
        ReservedTokens = ReservedTokens,
    };

    public byte[] Encode() => JsonSerializer.SerializeToUtf8Bytes(this, SharedRequestJson.Default.AdoptableArrival);

    /// <summary>The arrival kept in <paramref name="json"/>, or null when it cannot be read (written by another version).</summary>
    public static AdoptableArrival? Decode(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, SharedRequestJson.Default.AdoptableArrival);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

[JsonSerializable(typeof(AdoptableArrival))]
internal sealed partial class SharedRequestJson : JsonSerializerContext;
