using System.Text.Json.Serialization;
using Anteroom.Requests;

namespace Anteroom.Native;

// The native API's JSON shapes. Every event's data repeats its name in `type`.

internal sealed record QueuedEvent(string RequestId, int Position, int QueueLength, long EtaMs)
{
    public string Type => "queued";
}

internal sealed record StartedEvent(string RequestId, string Backend, string Model, long WaitedMs, int Attempt)
{
    public string Type => "started";
}

internal sealed record TokenEvent(string Text)
{
    public string Type => "token";
}

internal sealed record UsageBody(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record DoneEvent(string FinishReason, UsageBody Usage, TimingsBody Timings)
{
    public string Type => "done";
}

internal sealed record ErrorEvent(string Code, string Message, long? RetryAfterMs)
{
    public string Type => "error";
}

internal sealed record CancelledEvent(string Reason)
{
    public string Type => "cancelled";
}

internal sealed record ErrorDetail(string Code, string Message, string? Field = null, long? RetryAfterMs = null);

internal sealed record ErrorBody(ErrorDetail Error);

internal sealed record ChatResult(
    string RequestId, string Model, string Backend, string Text, string FinishReason, UsageBody Usage, TimingsBody Timings);

internal sealed record RequestStatus(
    string RequestId,
    string State,
    string Model,
    string? Backend,
    int? Position,
    int? QueueLength,
    long? EtaMs,
    long WaitedMs,
    int Attempts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? EndedAt,
    long LastEventId,
    string? ConversationId);

internal sealed record ConversationBody(string Id, string Title, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, int MessageCount);

internal sealed record ConversationList(IReadOnlyList<ConversationBody> Conversations);

internal sealed record MessageBody(long Seq, string Role, string Content, DateTimeOffset At, string? RequestId, string? Model, string? FinishReason);

internal sealed record ConversationDetail(string Id, string Title, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, IReadOnlyList<MessageBody> Messages);

internal sealed record SessionBody(string Mode, bool SignedIn, string? User, string? Tier, bool Admin, string? Problem);

internal sealed record RequestList(IReadOnlyList<RequestStatus> Requests);

internal sealed record CancelledRequests(IReadOnlyList<string> Cancelled);

internal sealed record QueueEntry(int Position, string Model, string User, long WaitedMs, bool Yours, string? RequestId);

internal sealed record ModelStatus(string Model, int Waiting, int Running, int Slots, long EstimatedServiceMs);

internal sealed record BackendStatus(string Name, string Protocol, int Slots, int Running, bool Healthy, IReadOnlyList<string> Models, long Completed, double Utilisation);

internal sealed record WaitStatus(long P50, long P95, long P99, int Samples);

internal sealed record QueueStatus(
    string Policy,
    bool Simulated,
    int Waiting,
    int Running,
    int PeakRunning,
    long Admitted,
    long Completed,
    long Failed,
    long Cancelled,
    long TimedOut,
    long Refused,
    IReadOnlyDictionary<string, long> RefusedByReason,
    long Requeued,
    WaitStatus WaitMs,
    IReadOnlyList<ModelStatus> Models,
    IReadOnlyList<BackendStatus> Backends,
    IReadOnlyList<QueueEntry> Queue);

internal sealed record ModelsList(IReadOnlyList<string> Models, string DefaultModel, bool Simulated);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(QueuedEvent))]
[JsonSerializable(typeof(StartedEvent))]
[JsonSerializable(typeof(TokenEvent))]
[JsonSerializable(typeof(DoneEvent))]
[JsonSerializable(typeof(ErrorEvent))]
[JsonSerializable(typeof(CancelledEvent))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ChatResult))]
[JsonSerializable(typeof(RequestStatus))]
[JsonSerializable(typeof(RequestList))]
[JsonSerializable(typeof(SessionBody))]
[JsonSerializable(typeof(ConversationBody))]
[JsonSerializable(typeof(ConversationList))]
[JsonSerializable(typeof(ConversationDetail))]
[JsonSerializable(typeof(CancelledRequests))]
[JsonSerializable(typeof(QueueStatus))]
[JsonSerializable(typeof(ModelsList))]
internal sealed partial class NativeJson : JsonSerializerContext;
