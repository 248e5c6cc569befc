namespace Anteroom.Requests;

/// <summary>
/// Whether this gateway is stopping (see <c>GatewayDrain</c>): it then admits nothing new, tells the requests still
/// waiting to try again, and gives the running ones time to finish.
/// </summary>
internal sealed class Draining
{
    /// <summary>Why a request is refused or ended while the gateway stops.</summary>
    public const string Reason = "server_shutting_down";

    /// <summary>When to try again: a restart, or another replica behind the same load balancer, takes about this long.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    private volatile bool _draining;

    public bool IsDraining => _draining;

    /// <summary>What a request arriving while the gateway stops is told.</summary>
    public static Denial Refusal { get; } = new(
        StatusCodes.Status503ServiceUnavailable, Reason, "Anteroom is shutting down; send the request again in a moment.", RetryAfter);

    /// <summary>How a request that had not finished when the gateway stopped ends: failed, and worth sending again.</summary>
    public static RequestFailure Failure { get; } = new(Reason, "Anteroom shut down before this request finished; send it again.") { RetryAfter = RetryAfter };

    public void Begin() => _draining = true;
}
