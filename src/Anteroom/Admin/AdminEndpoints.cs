using System.Globalization;
using System.Text.Json;
using Anteroom.Configuration;
using Anteroom.DropIn;
using Anteroom.Gateway;
using Anteroom.Identity;
using Anteroom.Native;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

namespace Anteroom.Admin;

/// <summary>
/// The operator's API under <c>/admin/</c> (admin keys only, enforced by the access gate): the whole queue with
/// owners, the backends, the keys, usage from the request log, the last hour's metrics and a live event stream of
/// all that for the dashboard page served at <c>/admin</c>. Any request is cancelled with
/// <c>DELETE /queue/requests/{id}</c>, which admins may use on anyone's.
/// </summary>
internal static class AdminEndpoints
{
    private const int MaxLoggedRequests = 1000;

    public static void MapAdminApi(this IEndpointRouteBuilder app)
    {
        // The dashboard page itself is a page like the chat page (the access gate lets anyone load it); everything
        // it shows comes from the admin endpoints below, which need an admin caller.
        string dashboard = Path.Combine(AppContext.BaseDirectory, "wwwroot", "admin.html");
        app.MapMethods("/admin", [HttpMethods.Get, HttpMethods.Head], () =>
            File.Exists(dashboard) ? Results.File(dashboard, "text/html; charset=utf-8") : Results.NotFound())
            .WithAccess(Access.Public);
        var admin = app.MapGroup("/admin").WithAccess(Access.Admin);
        admin.MapGet("/events", AdminEvents.StreamAsync);
        admin.MapGet("/metrics", MetricsAsync);
        admin.MapGet("/queue", QueueAsync);
        admin.MapGet("/backends", BackendsAsync);
        admin.MapGet("/keys", KeysAsync);
        admin.MapPost("/keys", CreateKeyAsync);
        admin.MapDelete("/keys/{id}", RevokeKeyAsync);
        admin.MapGet("/usage", UsageAsync);
        admin.MapGet("/requests", LoggedAsync);
    }

    private static async Task<IResult> QueueAsync(IRequestQueue queue, IRequestRegistry registry, CancellationToken cancellationToken) =>
        Results.Json(
            await AdminViews.QueueAsync(queue, await queue.GetSnapshotAsync(cancellationToken), registry, cancellationToken: cancellationToken),
            AdminJson.Default.AdminQueue);

    private static async Task<IResult> BackendsAsync(IRequestQueue queue, BackendsView backends, CancellationToken cancellationToken) =>
        Results.Json(AdminViews.Backends(await queue.GetSnapshotAsync(cancellationToken), backends), AdminJson.Default.AdminBackends);

    /// <summary><c>GET /admin/metrics?minutes=60</c>: the newest minutes of ten-second points, the current one last.</summary>
    private static async Task<IResult> MetricsAsync(HttpContext context, GatewayMetrics metrics, IRequestQueue queue, CancellationToken cancellationToken)
    {
        int minutes = 60;
        if (context.Request.Query["minutes"].ToString() is { Length: > 0 } text &&
            (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out minutes) || minutes is < 1 or > 60))
        {
            return NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request", "'minutes' must be a whole number from 1 to 60.", "minutes");
        }

        int buckets = (minutes * 60 / GatewayMetrics.BucketSeconds) + 1;
        return Results.Json(AdminViews.Metrics(metrics, buckets, await queue.GetSnapshotAsync(cancellationToken)), AdminJson.Default.AdminMetrics);
    }

    private static async Task<IResult> KeysAsync(IKeyStore keys, TimeProvider time, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var all = await keys.ListKeysAsync(cancellationToken);
        return Results.Json(new AdminKeyList([.. all.Select(k => Describe(k, now))]), AdminJson.Default.AdminKeyList);
    }

    private static async Task<IResult> CreateKeyAsync(HttpContext context, IKeyStore keys, IOptions<AnteroomOptions> options, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            return NativeEndpoints.Problem(problem!);
        }

        using (body)
        {
            var fields = new FieldReader(body.Root);
            string? user = fields.String("user", required: true);
            string? tier = fields.String("tier");
            string? expires = fields.String("expires");
            bool admin = fields.Bool("admin") ?? false;
            bool canAct = fields.Bool("can_act_for_users") ?? false;
            TimeSpan expiresIn = default;
            if (fields.IsValid && expires is not null && !KeyIssuer.TryParseExpiry(expires, out expiresIn))
            {
                fields.Fail("expires", "'expires' must be a duration such as '30d', '12h', '90m' or '2w'.");
            }

            if (!fields.IsValid)
            {
                return NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request", fields.Problem!, fields.Field);
            }

            var issuer = new KeyIssuer(keys, options.Value, time);
            var (token, key, refused) = await issuer.IssueAsync(
                new KeyOrder(user, tier, expires is null ? null : expiresIn, admin, canAct), context.RequestAborted);
            if (token is null)
            {
                return NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request", refused!);
            }

            return Results.Json(new CreatedKey(token, Describe(key!, time.GetUtcNow())), AdminJson.Default.CreatedKey, statusCode: StatusCodes.Status201Created);
        }
    }

    private static async Task<IResult> RevokeKeyAsync(string id, IKeyStore keys, TimeProvider time, CancellationToken cancellationToken) =>
        await keys.RevokeKeyAsync(id, time.GetUtcNow(), cancellationToken)
            ? Results.NoContent()
            : NativeEndpoints.Error(StatusCodes.Status404NotFound, "not_found", $"No unrevoked key '{id}' is known here.");

    private static async Task<IResult> UsageAsync(HttpContext context, IRequestLog log, TimeProvider time)
    {
        var period = Period(context, time);
        if (period is not { Since: { } since, Until: { } until })
        {
            return PeriodProblem(period.Field);
        }

        var report = await log.SummarizeAsync(since, until, context.RequestAborted);
        return Results.Json(
            new UsageBody(report.Since, report.Until, [.. report.Users.Select(u => Line(u, owner: true))], [.. report.Tiers.Select(t => Line(t, owner: false))], report.Hours),
            AdminJson.Default.UsageBody);
    }

    private static async Task<IResult> LoggedAsync(HttpContext context, IRequestLog log, TimeProvider time)
    {
        var period = Period(context, time);
        if (period is not { Since: { } since, Until: { } until, Limit: var limit })
        {
            return PeriodProblem(period.Field);
        }

        string? owner = context.Request.Query["owner"].ToString() is { Length: > 0 } o ? o : null;
        var entries = await log.ReadRequestsAsync(since, until, owner, limit, context.RequestAborted);
        return Results.Json(new LoggedRequests([.. entries.Select(e => new LoggedRequest(
            e.RequestId, e.At, Caller.NameOf(e.Owner), e.Owner, e.KeyId, e.Tier, e.Api, e.Model, e.Backend, e.Outcome, e.Reason,
            e.WaitedMs, e.TimeToFirstTokenMs, e.RanMs, e.TokensIn, e.TokensOut))]), AdminJson.Default.LoggedRequests);
    }

    /// <summary>The period asked for, or the parameter at fault.</summary>
    private readonly record struct AskedPeriod(DateTimeOffset? Since, DateTimeOffset? Until, int Limit, string? Field = null)
    {
        public static AskedPeriod Wrong(string field) => new(null, null, 0, field);
    }

    /// <summary>
    /// The period asked for: <c>since</c>/<c>until</c> (ISO 8601) or the last <c>hours</c> (24 by default), with since
    /// before until; otherwise which parameter is wrong. Times at the ends of the calendar are fine to give, but
    /// counting back from one can leave it: that is the caller's mistake, not the server's.
    /// </summary>
    private static AskedPeriod Period(HttpContext context, TimeProvider time)
    {
        var query = context.Request.Query;
        DateTimeOffset until = time.GetUtcNow();
        if (query["until"].ToString() is { Length: > 0 } untilText && !TryParseTime(untilText, out until))
        {
            return AskedPeriod.Wrong("until");
        }

        DateTimeOffset since;
        if (query["since"].ToString() is { Length: > 0 } sinceText)
        {
            if (!TryParseTime(sinceText, out since))
            {
                return AskedPeriod.Wrong("since");
            }
        }
        else
        {
            double hours = 24;
            if (query["hours"].ToString() is { Length: > 0 } hoursText &&
                (!double.TryParse(hoursText, NumberStyles.Float, CultureInfo.InvariantCulture, out hours) || !(hours > 0) || hours > 24 * 366))
            {
                return AskedPeriod.Wrong("hours");
            }

            var back = TimeSpan.FromHours(hours);
            if (until - DateTimeOffset.MinValue < back)
            {
                return AskedPeriod.Wrong("until");
            }

            since = until - back;
        }

        if (since >= until)
        {
            return AskedPeriod.Wrong("since");
        }

        int limit = 100;
        if (query["limit"].ToString() is { Length: > 0 } limitText &&
            (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLoggedRequests))
        {
            return AskedPeriod.Wrong("limit");
        }

        return new AskedPeriod(since, until, limit);
    }

    private static bool TryParseTime(string text, out DateTimeOffset at) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out at);

    private static IResult PeriodProblem(string? field) => NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request",
        $"'{field}' is wrong. Give 'since' and 'until' as ISO 8601 times with since before until, or 'hours' (up to a year) back from 'until'; " +
        $"'limit' from 1 to {MaxLoggedRequests}.", field);

    private static UsageLine Line(UsageRow row, bool owner) => new(
        owner ? Caller.NameOf(row.Name) : row.Name, owner ? row.Name : null, row.Requests, row.Completed, row.Failed, row.Cancelled, row.TimedOut,
        row.Refused, row.RefusedByReason, row.TokensIn, row.TokensOut, row.WaitP50Ms, row.WaitP95Ms);

    private static AdminKey Describe(StoredKey key, DateTimeOffset now) => new(
        key.Id, key.User, key.Tier,
        key.RevokedAt is not null ? "revoked" : key.ExpiresAt is { } expires && expires <= now ? "expired" : "active",
        key.CreatedAt, key.ExpiresAt, key.RevokedAt, key.Admin, key.CanActForUsers);
}
