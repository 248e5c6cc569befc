namespace Anteroom.Scheduling;

/// <summary>A waiting ticket's place: its position (1 runs next), its queue's length and the expected wait.</summary>
public readonly record struct WaitingPlace(int Position, int QueueLength, TimeSpan EstimatedWait);

/// <summary>A waiting ticket and its position (1 runs next in its model's queue), for queue listings.</summary>
public sealed record WaitingTicket(string Id, string Owner, string Model, double Weight, int Position, DateTimeOffset ArrivedAt);

/// <summary>A ticket holding a slot, for listings; <paramref name="Attempts"/> counts this one.</summary>
public sealed record RunningTicket(string Id, string Owner, string Model, string Backend, DateTimeOffset StartedAt, int Attempts);

/// <summary>
/// The queue's counts at one instant, cheap enough to read per request or per change: no percentiles, no
/// per-model or per-backend lists.
/// </summary>
public readonly record struct QueueCounts(
    int Waiting, int Running, long Admitted, long Completed, long Failed, long Cancelled, long TimedOut, long Refused, long Requeued);

/// <summary>Wait-time percentiles over the most recent dispatches.</summary>
public sealed record WaitPercentiles(TimeSpan P50, TimeSpan P95, TimeSpan P99, int Samples);

/// <summary>One model's queue.</summary>
public sealed record ModelQueueSnapshot(string Model, int Waiting, int Running, int Slots, TimeSpan EstimatedServiceTime);

/// <summary>One backend's slots and use.</summary>
public sealed record BackendSnapshot(string Name, int Slots, int Running, bool Healthy, IReadOnlyList<string> Models, long Completed, double Utilisation);

/// <summary>The scheduler's statistics at one instant.</summary>
public sealed record SchedulerSnapshot
{
    /// <summary>When it was taken.</summary>
    public required DateTimeOffset TakenAt { get; init; }

    /// <summary>Tickets admitted since start.</summary>
    public required long Admitted { get; init; }

    /// <summary>Tickets that completed.</summary>
    public required long Completed { get; init; }

    /// <summary>Tickets that failed.</summary>
    public required long Failed { get; init; }

    /// <summary>Tickets cancelled, waiting or running.</summary>
    public required long Cancelled { get; init; }

    /// <summary>Tickets that waited past their deadline.</summary>
    public required long TimedOut { get; init; }

    /// <summary>Arrivals refused.</summary>
    public required long Refused { get; init; }

    /// <summary>Refusals by reason.</summary>
    public required IReadOnlyDictionary<RefusalReason, long> RefusedByReason { get; init; }

    /// <summary>Tickets put back in the queue after a backend failure before their first token.</summary>
    public required long Requeued { get; init; }

    /// <summary>Tickets waiting now.</summary>
    public required int Waiting { get; init; }

    /// <summary>Tickets running now.</summary>
    public required int Running { get; init; }

    /// <summary>The most tickets that ran at once.</summary>
    public required int PeakRunning { get; init; }

    /// <summary>Per model.</summary>
    public required IReadOnlyList<ModelQueueSnapshot> Models { get; init; }

    /// <summary>Per backend.</summary>
    public required IReadOnlyList<BackendSnapshot> Backends { get; init; }

    /// <summary>How long dispatched tickets waited.</summary>
    public required WaitPercentiles Wait { get; init; }
}
