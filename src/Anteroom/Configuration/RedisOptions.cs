namespace Anteroom.Configuration;

/// <summary>
/// Redis mode: several gateway replicas behind one load balancer share one queue per model, the backends' slots,
/// the per-user limits and the request events, all kept in one Redis. Unset, a gateway keeps everything in its own
/// memory, as a single instance should.
/// </summary>
public sealed class RedisOptions
{
    /// <summary>
    /// A StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c> or
    /// <c>redis.internal:6380,password=…,ssl=true</c>. Setting it turns Redis mode on.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>Put before every key and channel name, so several deployments can share one Redis.</summary>
    public string Prefix { get; set; } = "anteroom";

    /// <summary>
    /// How long a slot lease lasts without its replica's heartbeat: the slots held by a replica that dies come back
    /// within this many seconds.
    /// </summary>
    public double LeaseSeconds { get; set; } = 10;

    /// <summary>Whether Redis mode is on.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(Configuration);
}
