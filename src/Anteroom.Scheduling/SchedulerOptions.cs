namespace Anteroom.Scheduling;

/// <summary>How the next waiting ticket is chosen.</summary>
public enum SchedulingPolicy
{
    /// <summary>Weighted fair share of tokens across users (virtual token counters), FIFO within a user.</summary>
    Fair,

    /// <summary>Strict arrival order.</summary>
    Fifo,
}

/// <summary>What the scheduler assumes about a backend and model before it has measured anything.</summary>
public sealed record ServicePrior
{
    /// <summary>Time to first token.</summary>
    public TimeSpan TimeToFirstToken { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Generation speed of one stream.</summary>
    public double TokensPerSecond { get; init; } = 30;

    /// <summary>Typical answer length.</summary>
    public double OutputTokens { get; init; } = 256;
}

/// <summary>Limits and tuning of the <see cref="Scheduler"/>.</summary>
public sealed class SchedulerOptions
{
    /// <summary>How the next ticket is chosen.</summary>
    public SchedulingPolicy Policy { get; set; } = SchedulingPolicy.Fair;

    /// <summary>Tickets waiting across all users and models before arrivals are refused.</summary>
    public int MaxQueueLength { get; set; } = 10_000;

    /// <summary>Tickets one user may have waiting.</summary>
    public int MaxWaitingPerUser { get; set; } = 100;

    /// <summary>Tickets one user may have admitted and not yet ended (waiting plus running).</summary>
    public int MaxInFlightPerUser { get; set; } = 200;

    /// <summary>How long a ticket may wait when its request names no shorter deadline.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How many times one ticket may be dispatched (a backend failure before the first token requeues it).</summary>
    public int MaxDispatchAttempts { get; set; } = 3;

    /// <summary>Output tokens cost this many times an input token in the fair-share counters.</summary>
    public double OutputTokenWeight { get; set; } = 2;

    /// <summary>Weight of the newest sample in the exponentially weighted service-time averages.</summary>
    public double EstimateSmoothing { get; set; } = 0.2;

    /// <summary>Assumed service figures until a backend and model have been measured.</summary>
    public ServicePrior Prior { get; set; } = new();

    /// <summary>
    /// Queue changes are announced at most this often, so thousands of waiting holders are woken once per
    /// interval instead of once per dispatch. Zero announces every change at once.
    /// </summary>
    public TimeSpan ChangeCoalescing { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Retry hint when no healthy backend serves a model.</summary>
    public TimeSpan NoBackendRetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many recent waits the wait-time percentiles are computed from.</summary>
    public int WaitSampleWindow { get; set; } = 4096;

    internal void Validate()
    {
        Require(MaxQueueLength >= 0, nameof(MaxQueueLength), "must be zero or more");
        Require(MaxWaitingPerUser >= 1, nameof(MaxWaitingPerUser), "must be at least 1");
        Require(MaxInFlightPerUser >= 1, nameof(MaxInFlightPerUser), "must be at least 1");
        Require(MaxWait > TimeSpan.Zero, nameof(MaxWait), "must be positive");
        Require(MaxDispatchAttempts >= 1, nameof(MaxDispatchAttempts), "must be at least 1");
        Require(OutputTokenWeight > 0, nameof(OutputTokenWeight), "must be positive");
        Require(EstimateSmoothing is > 0 and <= 1, nameof(EstimateSmoothing), "must be in (0, 1]");
        Require(ChangeCoalescing >= TimeSpan.Zero, nameof(ChangeCoalescing), "must not be negative");
        Require(WaitSampleWindow >= 1, nameof(WaitSampleWindow), "must be at least 1");
        Require(Prior.TokensPerSecond > 0 && Prior.OutputTokens > 0 && Prior.TimeToFirstToken >= TimeSpan.Zero,
            nameof(Prior), "needs positive tokens per second and output tokens");
    }

    private static void Require(bool condition, string name, string what)
    {
        if (!condition)
        {
            throw new ArgumentException($"SchedulerOptions.{name} {what}.", name);
        }
    }
}

/// <summary>A backend as the scheduler sees it: a name, a number of slots and the models it serves.</summary>
/// <param name="Name">Unique name.</param>
/// <param name="Slots">Generations it runs at once.</param>
/// <param name="Models">Model names it serves.</param>
public sealed record BackendDefinition(string Name, int Slots, IReadOnlyCollection<string> Models);
