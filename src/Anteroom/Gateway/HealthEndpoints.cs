using System.Text.Json.Serialization;
using Anteroom.Identity;
using Anteroom.Scheduling;
using StackExchange.Redis;

namespace Anteroom.Gateway;

/// <summary>
/// The probes load balancers and orchestrators ask, unauthenticated and cheap: <c>/healthz</c> (the process
/// answers) and <c>/readyz</c> (it can serve: not stopping, a healthy backend, and in Redis mode Redis reachable).
/// </summary>
internal static class HealthEndpoints
{
    /// <summary>How long the readiness probe waits for Redis to answer before calling it unreachable.</summary>
    private static readonly TimeSpan RedisProbeTimeout = TimeSpan.FromSeconds(1);

    public static void MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapMethods("/healthz", [HttpMethods.Get, HttpMethods.Head], () => Results.Json(new Health("ok", null), HealthJson.Default.Health))
            .WithAccess(Access.Public);
        app.MapMethods("/readyz", [HttpMethods.Get, HttpMethods.Head], ReadyAsync).WithAccess(Access.Public);
    }

    private static async Task<IResult> ReadyAsync(
        HttpContext context, IRequestQueue queue, Requests.Draining draining, Requests.RequestLife life, IServiceProvider services)
    {
        var checks = new Dictionary<string, HealthCheck>(StringComparer.Ordinal);
        if (draining.IsDraining)
        {
            checks["draining"] = new HealthCheck(false, $"stopping, {life.Running} requests still in flight");
        }

        var redis = services.GetService<IConnectionMultiplexer>();
        if (redis is not null)
        {
            checks["redis"] = await RedisCheckAsync(redis);
        }

        // The backends' health is kept in the queue, which needs Redis in Redis mode: asked only when it answers.
        if (redis is null || checks["redis"].Ok)
        {
            var backends = (await queue.GetSnapshotAsync(context.RequestAborted)).Backends;
            int healthy = backends.Count(b => b.Healthy);
            checks["backends"] = new HealthCheck(healthy > 0, $"{healthy} of {backends.Count} healthy");
        }

        bool ready = checks.Values.All(c => c.Ok);
        return Results.Json(
            new Health(ready ? "ready" : "not_ready", checks), HealthJson.Default.Health,
            statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    private static async Task<HealthCheck> RedisCheckAsync(IConnectionMultiplexer redis)
    {
        if (!redis.IsConnected)
        {
            return new HealthCheck(false, "not connected");
        }

        try
        {
            var latency = await redis.GetDatabase().PingAsync().WaitAsync(RedisProbeTimeout);
            return new HealthCheck(true, $"connected, {latency.TotalMilliseconds:0.#} ms");
        }
        catch (Exception e) when (e is TimeoutException || Shared.SharedState.IsUnreachable(e))
        {
            return new HealthCheck(false, "not answering: " + e.Message);
        }
    }

    internal sealed record Health(string Status, IReadOnlyDictionary<string, HealthCheck>? Checks);

    internal sealed record HealthCheck(bool Ok, string Detail);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(HealthEndpoints.Health))]
internal sealed partial class HealthJson : JsonSerializerContext;
