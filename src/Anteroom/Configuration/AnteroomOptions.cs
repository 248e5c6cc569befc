using Anteroom.Scheduling;

namespace Anteroom.Configuration;

/// <summary>The gateway's configuration, bound from the <c>Anteroom</c> section.</summary>
public sealed class AnteroomOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Anteroom";

    /// <summary>Model servers behind the gateway. None: an embedded simulator is started.</summary>
    public List<BackendOptions> Backends { get; set; } = [];

    /// <summary>Queue policy and limits.</summary>
    public QueueOptions Queue { get; set; } = new();

    /// <summary>Streaming to clients.</summary>
    public StreamOptions Stream { get; set; } = new();

    /// <summary>Backend health checking.</summary>
    public HealthOptions Health { get; set; } = new();

    /// <summary>What wait estimates assume before a backend and model have been measured.</summary>
    public EstimateOptions Estimates { get; set; } = new();

    /// <summary>The model used when a native request names none; the first configured model otherwise.</summary>
    public string? DefaultModel { get; set; }
}

/// <summary>One model server.</summary>
public sealed class BackendOptions
{
    /// <summary>Unique name, shown to users and operators.</summary>
    public string? Name { get; set; }

    /// <summary>Base URL, e.g. <c>http://gpu-a:11434</c>.</summary>
    public string? Url { get; set; }

    /// <summary><c>ollama</c> or <c>openai</c>.</summary>
    public string Protocol { get; set; } = "ollama";

    /// <summary>Generations it runs at once.</summary>
    public int Slots { get; set; } = 1;

    /// <summary>Models it serves.</summary>
    public List<string> Models { get; set; } = [];
}

/// <summary>Queue policy and limits.</summary>
public sealed class QueueOptions
{
    /// <summary><c>fair</c> (default) or <c>fifo</c>.</summary>
    public string Policy { get; set; } = "fair";

    /// <summary>Tickets waiting across all users before arrivals are refused.</summary>
    public int MaxQueueLength { get; set; } = 1000;

    /// <summary>Tickets one user may have waiting.</summary>
    public int MaxWaitingPerUser { get; set; } = 20;

    /// <summary>Tickets one user may have admitted and unfinished.</summary>
    public int MaxInFlightPerUser { get; set; } = 40;

    /// <summary>How long a request may wait for a slot.</summary>
    public double MaxWaitSeconds { get; set; } = 600;

    /// <summary>Dispatch attempts per request (backend failures before the first token are retried).</summary>
    public int MaxDispatchAttempts { get; set; } = 3;

    /// <summary>Position updates are coalesced to at most one per this interval.</summary>
    public int PositionUpdateMilliseconds { get; set; } = 100;
}

/// <summary>Service figures assumed until measured.</summary>
public sealed class EstimateOptions
{
    /// <summary>Time to first token.</summary>
    public double TimeToFirstTokenMs { get; set; } = 500;

    /// <summary>Generation speed of one stream.</summary>
    public double TokensPerSecond { get; set; } = 30;

    /// <summary>Typical answer length in tokens.</summary>
    public double OutputTokens { get; set; } = 256;
}

/// <summary>Streaming to clients.</summary>
public sealed class StreamOptions
{
    /// <summary>Comment keep-alives on idle event streams.</summary>
    public double KeepAliveSeconds { get; set; } = 15;

    /// <summary>The longest a native request may ask to survive without any connected client, to be resumed.</summary>
    public double MaxReconnectGraceSeconds { get; set; } = 60;

    /// <summary>How long a finished request's events stay available for replay.</summary>
    public double RetainSeconds { get; set; } = 300;
}

/// <summary>Backend health checking.</summary>
public sealed class HealthOptions
{
    /// <summary>How often every backend is probed.</summary>
    public double ProbeSeconds { get; set; } = 10;

    /// <summary>Consecutive failures after which a backend takes no new requests until a probe succeeds.</summary>
    public int FailuresBeforeUnhealthy { get; set; } = 3;

    /// <summary>A backend stream silent this long is abandoned as stalled.</summary>
    public double IdleTimeoutSeconds { get; set; } = 60;
}

internal static class AnteroomOptionsExtensions
{
    public static SchedulingPolicy ParsedPolicy(this QueueOptions queue) =>
        string.Equals(queue.Policy, "fifo", StringComparison.OrdinalIgnoreCase) ? SchedulingPolicy.Fifo : SchedulingPolicy.Fair;

    public static Backends.BackendProtocol ParsedProtocol(this BackendOptions backend) =>
        string.Equals(backend.Protocol, "openai", StringComparison.OrdinalIgnoreCase) ? Backends.BackendProtocol.OpenAI : Backends.BackendProtocol.Ollama;
}
