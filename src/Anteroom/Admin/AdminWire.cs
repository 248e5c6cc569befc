using System.Text.Json.Serialization;
using Anteroom.Native;
using Anteroom.Storage;

namespace Anteroom.Admin;

// The admin API's JSON shapes.

internal sealed record AdminWaiting(string RequestId, string User, string Owner, string Tier, string Model, int Position, long WaitedMs);

internal sealed record AdminRunning(string RequestId, string User, string Owner, string Tier, string Model, string Backend, long ElapsedMs, int Tokens);

internal sealed record AdminQueue(int Waiting, int Running, IReadOnlyList<ModelStatus> Models, IReadOnlyList<AdminWaiting> Queue, IReadOnlyList<AdminRunning> Active);

internal sealed record AdminBackends(IReadOnlyList<BackendStatus> Backends);

internal sealed record AdminKey(
    string Id, string User, string Tier, string State, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt, bool Admin, bool CanActForUsers);

internal sealed record AdminKeyList(IReadOnlyList<AdminKey> Keys);

internal sealed record CreatedKey(string Key, AdminKey Details);

internal sealed record UsageLine(
    string Name, string? Owner, long Requests, long Completed, long Failed, long Cancelled, long TimedOut, long Refused,
    IReadOnlyDictionary<string, long> RefusedByReason, long TokensIn, long TokensOut, long WaitP50Ms, long WaitP95Ms);

internal sealed record UsageBody(DateTimeOffset Since, DateTimeOffset Until, IReadOnlyList<UsageLine> Users, IReadOnlyList<UsageLine> Tiers, IReadOnlyList<WaitHour> Hours);

internal sealed record LoggedRequest(
    string RequestId, DateTimeOffset At, string User, string Owner, string? KeyId, string Tier, string Api, string Model, string? Backend,
    string Outcome, string? Reason, long WaitedMs, long? TimeToFirstTokenMs, long RanMs, int TokensIn, int TokensOut);

internal sealed record LoggedRequests(IReadOnlyList<LoggedRequest> Requests);

/// <summary>
/// Ten seconds of the gateway. Rates are over the seconds the point covers: the full bucket once it is complete,
/// the time so far for the current one. Percentiles are of the waits of requests dispatched in it (0 when none:
/// see <c>waits</c>).
/// </summary>
internal sealed record MetricsPoint(
    DateTimeOffset At,
    bool Complete,
    int QueueLength,
    int QueueLengthLast,
    long WaitP50Ms,
    long WaitP95Ms,
    int Waits,
    double Tokens,
    double TokensPerSecond,
    int Refusals,
    double RefusalsPerMinute,
    IReadOnlyDictionary<string, int> RefusalsByCode,
    int Completed);

internal sealed record BackendThroughput(string Name, double TokensPerSecond);

/// <summary>A series of points, oldest first, and each backend's tokens per second over the last minute.</summary>
internal sealed record AdminMetrics(int BucketSeconds, IReadOnlyList<MetricsPoint> Points, IReadOnlyList<BackendThroughput> Backends);

/// <summary>
/// What the dashboard's event stream pushes: the fields of <c>/admin/queue</c> and <c>/admin/backends</c> side by
/// side, and the last minute of metrics (the current point last).
/// </summary>
internal sealed record AdminSnapshot(
    DateTimeOffset At,
    int Waiting,
    int Running,
    IReadOnlyList<ModelStatus> Models,
    IReadOnlyList<AdminWaiting> Queue,
    IReadOnlyList<AdminRunning> Active,
    IReadOnlyList<BackendStatus> Backends,
    AdminMetrics Metrics);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AdminQueue))]
[JsonSerializable(typeof(AdminBackends))]
[JsonSerializable(typeof(AdminKeyList))]
[JsonSerializable(typeof(AdminKey))]
[JsonSerializable(typeof(CreatedKey))]
[JsonSerializable(typeof(UsageBody))]
[JsonSerializable(typeof(LoggedRequests))]
[JsonSerializable(typeof(AdminMetrics))]
[JsonSerializable(typeof(AdminSnapshot))]
internal sealed partial class AdminJson : JsonSerializerContext;
