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

    /// <summary>
    /// How long a waiting ticket outlives its holder (the replica that admitted it) to be adopted by another holder
    /// (<see cref="IRequestQueue.AdoptAsync"/>); zero (the default) ends it with its holder. Only a queue shared by
    /// several replicas uses it: in one process the holder never dies without the whole queue.
    /// </summary>
    public TimeSpan HolderGrace { get; init; }

    /// <summary>Throws when the request cannot be queued as given: misuse by the caller, not a refusal.</summary>
    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(Id);
        ArgumentException.ThrowIfNullOrEmpty(Owner);
        ArgumentException.ThrowIfNullOrEmpty(Model);
        if (!(Weight > 0) || double.IsInfinity(Weight))
        {
            throw new ArgumentOutOfRangeException(nameof(Weight), "Weight must be a positive number.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(PromptTokens);
        if (MaxOutputTokens is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxOutputTokens), "MaxOutputTokens must be at least 1.");
        }

        if (MaxInFlight is < 1 || MaxWaiting is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInFlight), "MaxInFlight and MaxWaiting must be at least 1.");
        }

        if (HolderGrace < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(HolderGrace), "HolderGrace must not be negative.");
        }
    }
}
