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

    /// <summary>Who may call, and how callers are told apart.</summary>
    public AuthOptions Auth { get; set; } = new();

    /// <summary>Named sets of limits; every key names one, and open-mode callers get <see cref="AuthOptions.DefaultTier"/>.</summary>
    public Dictionary<string, TierOptions> Tiers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Where Anteroom keeps its database and the keys that protect its cookies.</summary>
    public DataOptions Data { get; set; } = new();

    /// <summary>Where keys, conversations and the request log are kept when not in the data directory's SQLite file.</summary>
    public StorageOptions Storage { get; set; } = new();

    /// <summary>How much of a conversation is sent back to the model, and how long conversations are kept.</summary>
    public ConversationOptions Conversations { get; set; } = new();

    /// <summary>Browser origins other than Anteroom's own that may call the API.</summary>
    public CorsOptions Cors { get; set; } = new();

    /// <summary>
    /// Host names Anteroom answers to besides IP addresses, <c>localhost</c>, the names in its listening URLs and
    /// the machine's own name: e.g. <c>llm.example.com</c>, <c>*.example.com</c>, or <c>*</c> for any. Requests for
    /// other names (a DNS-rebinding page) get 421 <c>host_not_allowed</c>.
    /// </summary>
    public List<string> AllowedHosts { get; set; } = [];

    /// <summary>The largest request body accepted, in bytes; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Open client connections the server holds at once; further ones are closed as they arrive. Unset: no limit.</summary>
    public long? MaxConnections { get; set; }

    /// <summary>Redis mode: the queue, slots, limits and events shared by several replicas.</summary>
    public RedisOptions Redis { get; set; } = new();

    /// <summary>What a stop (SIGTERM, Ctrl+C) does to the requests in flight.</summary>
    public ShutdownOptions Shutdown { get; set; } = new();
}

/// <summary>A graceful stop: new requests are refused, waiting ones told to retry, running ones given time to finish.</summary>
public sealed class ShutdownOptions
{
    /// <summary>How long running requests may take to finish after a stop begins; those still running then are stopped.</summary>
    public double DrainSeconds { get; set; } = 30;
}

/// <summary>Who may call, and how callers are told apart.</summary>
public sealed class AuthOptions
{
    /// <summary>
    /// <c>open</c>: anyone may call; a browser is told apart by its session cookie, anything else by its address,
    /// and a valid key still counts. <c>keys</c>: every API call needs a valid key.
    /// </summary>
    public string Mode { get; set; } = "open";

    /// <summary>The tier of callers without a key (open mode).</summary>
    public string DefaultTier { get; set; } = TierOptions.DefaultName;

    /// <summary>
    /// Open mode: browser sessions one client address may hold at once (each is a user with its own fair share); a
    /// session is held while used within the last 15 minutes. Browsers beyond it are refused, not merged.
    /// </summary>
    public int MaxSessionsPerAddress { get; set; } = 8;

    /// <summary>
    /// How long a key lookup is reused, in milliseconds: keyed requests then skip the database, and a key revoked or
    /// created by another process takes effect within this time (at once when revoked through this server's admin API).
    /// </summary>
    public int KeyCacheMilliseconds { get; set; } = 1000;
}

/// <summary>One tier: a fair-share weight and the limits of each of its users.</summary>
public sealed class TierOptions
{
    /// <summary>The tier used when none is configured under this name: weight 1, only the queue's own limits.</summary>
    public const string DefaultName = "default";

    /// <summary>Share of the GPUs when contended: 4 gets four times the share of 1.</summary>
    public double Weight { get; set; } = 1;

    /// <summary>Requests one user may have admitted and unfinished (never above the queue's own limit).</summary>
    public int? MaxInFlight { get; set; }

    /// <summary>Requests one user may have waiting (never above the queue's own limit).</summary>
    public int? MaxWaiting { get; set; }

    /// <summary>Requests one user may start per minute.</summary>
    public int? RequestsPerMinute { get; set; }

    /// <summary>Prompt and generated tokens one user may use per minute.</summary>
    public int? TokensPerMinute { get; set; }

    /// <summary>The most tokens one answer may generate; also the limit applied when a request sets none.</summary>
    public int? MaxOutputTokens { get; set; }

    /// <summary>The models its users may use; empty: every model.</summary>
    public List<string> Models { get; set; } = [];
}

/// <summary>Where Anteroom keeps its state.</summary>
public sealed class DataOptions
{
    /// <summary>The data directory; empty: <c>anteroom</c> under the user's local application data (<c>~/.local/share/anteroom</c>).</summary>
    public string? Directory { get; set; }

    /// <summary>Days the request log keeps an entry; older ones are deleted once an hour, so the log's disk use is bounded.</summary>
    public int RequestLogRetainDays { get; set; } = 90;

    /// <summary>
    /// Refused requests of one caller logged per minute; beyond it a caller's refusals are only counted (in the
    /// metrics), so a client hammering a limit cannot fill the disk one refusal at a time.
    /// </summary>
    public int MaxRefusalsLoggedPerUserPerMinute { get; set; } = 60;
}

/// <summary>Shared storage for several gateways.</summary>
public sealed class StorageOptions
{
    /// <summary>
    /// An Npgsql connection string (<c>Host=db;Database=anteroom;Username=anteroom;Password=…</c>): keys, signed-out
    /// sessions, conversations and the request log then live in that PostgreSQL database, shared by every gateway
    /// pointed at it. Unset: the SQLite file in the data directory.
    /// </summary>
    public string? Postgres { get; set; }
}

/// <summary>How much of a conversation is sent back to the model with each new message, and how long one is kept.</summary>
public sealed class ConversationOptions
{
    /// <summary>The most earlier messages sent with a new one.</summary>
    public int MaxHistoryMessages { get; set; } = 40;

    /// <summary>The most estimated tokens of earlier messages sent with a new one; older ones are left out first.</summary>
    public int MaxHistoryTokens { get; set; } = 8192;

    /// <summary>
    /// Days a conversation is kept after its last change (a message or a rename); older ones are deleted with their
    /// messages once an hour. Unset: kept until their owners delete them.
    /// </summary>
    public int? RetainDays { get; set; }
}

/// <summary>Cross-origin browser access, off unless origins are listed.</summary>
public sealed class CorsOptions
{
    /// <summary>Origins such as <c>https://app.example.com</c> whose pages may call the API.</summary>
    public List<string> Origins { get; set; } = [];
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

    /// <summary>
    /// The most tokens one answer may generate, whatever the tier: a request that sets no limit (or Ollama's
    /// unlimited -1 and -2) gets this one, and one asking for more is refused. A tier's cap applies below it.
    /// </summary>
    public int MaxOutputTokens { get; set; } = 4096;
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

    /// <summary>
    /// The most bytes of one streamed request's events kept for its readers and for replay. Older events are
    /// dropped beyond it, and a reader that falls further behind is cut off and its request stopped.
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// The most bytes of a whole (non-streamed) relayed answer, embeddings included. It is held complete until its
    /// client has it, so what a request can make it carry beyond its tokens (log probabilities, an echoed prompt, a
    /// large batch of vectors) is bounded here; a larger answer fails with 502 <c>answer_too_large</c>.
    /// </summary>
    public int MaxAnswerBytes { get; set; } = 64 * 1024 * 1024;
}

/// <summary>Backend health checking.</summary>
public sealed class HealthOptions
{
    /// <summary>How often every backend is probed.</summary>
    public double ProbeSeconds { get; set; } = 10;

    /// <summary>
    /// Requests in a row that failed on a backend after which it takes no new requests, whatever the window holds:
    /// a dead backend is caught before the window has <see cref="MinimumRequests"/>. Each request counts once,
    /// however often it was retried.
    /// </summary>
    public int FailuresBeforeUnhealthy { get; set; } = 5;

    /// <summary>The sliding window, in seconds, over which a backend's share of failed requests is judged.</summary>
    public double WindowSeconds { get; set; } = 30;

    /// <summary>The fewest requests the window must hold before its failure rate can mark the backend unhealthy.</summary>
    public int MinimumRequests { get; set; } = 10;

    /// <summary>The share of failed requests in the window, in percent, at which a backend is marked unhealthy.</summary>
    public double FailureRatePercent { get; set; } = 50;

    /// <summary>How long an unhealthy backend rests before one trial request may go through (or a probe succeeds first).</summary>
    public double CooldownSeconds { get; set; } = 3;

    /// <summary>A backend stream silent this long is abandoned as stalled.</summary>
    public double IdleTimeoutSeconds { get; set; } = 60;
}

internal static class AnteroomOptionsExtensions
{
    public static bool RequiresKeys(this AuthOptions auth) => string.Equals(auth.Mode, "keys", StringComparison.OrdinalIgnoreCase);

    /// <summary>The tier of this name; the built-in default tier when the default name is not configured.</summary>
    public static TierOptions? FindTier(this AnteroomOptions options, string name) =>
        options.Tiers.TryGetValue(name, out var tier) ? tier
        : string.Equals(name, options.Auth.DefaultTier, StringComparison.Ordinal) || name == TierOptions.DefaultName ? new TierOptions()
        : null;

    /// <summary>The data directory, configured or the default one.</summary>
    public static string DataDirectory(this AnteroomOptions options) =>
        string.IsNullOrWhiteSpace(options.Data.Directory)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "anteroom")
            : Path.GetFullPath(options.Data.Directory);

    public static SchedulingPolicy ParsedPolicy(this QueueOptions queue) =>
        string.Equals(queue.Policy, "fifo", StringComparison.OrdinalIgnoreCase) ? SchedulingPolicy.Fifo : SchedulingPolicy.Fair;

    public static Backends.BackendProtocol ParsedProtocol(this BackendOptions backend) =>
        string.Equals(backend.Protocol, "openai", StringComparison.OrdinalIgnoreCase) ? Backends.BackendProtocol.OpenAI : Backends.BackendProtocol.Ollama;
}
