namespace Anteroom.Scheduling;

/// <summary>What a caller asks the scheduler to admit.</summary>
public sealed record TicketRequest
{
    /// <summary>Unique, unguessable id chosen by the caller.</summary>
    public required string Id { get; init; }

    /// <summary>The identity the fair share and the per-user limits apply to.</summary>
    public required string Owner { get; init; }

    /// <summary>The model the request needs.</summary>
    public required string Model { get; init; }

    /// <summary>Fair-share weight of the owner (its tier); 4 gets four times the share of 1 when contended.</summary>
    public double Weight { get; init; } = 1;

    /// <summary>The owner's own limit on admitted, unfinished tickets (its tier), if lower than the scheduler's.</summary>
    public int? MaxInFlight { get; init; }

    /// <summary>The owner's own limit on waiting tickets (its tier), if lower than the scheduler's.</summary>
    public int? MaxWaiting { get; init; }

    /// <summary>Estimated prompt tokens.</summary>
    public int PromptTokens { get; init; }

    /// <summary>Upper bound on output tokens the caller asked for, if any.</summary>
    public int? MaxOutputTokens { get; init; }

    /// <summary>How long this request may wait; the scheduler's <see cref="SchedulerOptions.MaxWait"/> caps it.</summary>
    public TimeSpan? MaxWait { get; init; }
}
