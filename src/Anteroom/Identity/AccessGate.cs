using Anteroom.Configuration;
using Anteroom.Gateway;
using Microsoft.Extensions.Options;

namespace Anteroom.Identity;

/// <summary>Who may reach an endpoint, as endpoint metadata the access gate reads.</summary>
internal sealed class Access
{
    private Access(string name) => Name = name;

    /// <summary>Anyone, no identity needed: the pages and Ollama's "is it running" probe.</summary>
    public static Access Public { get; } = new("public");

    /// <summary>Anyone from an allowed origin; the endpoint checks the key it is given itself (the browser sign-in).</summary>
    public static Access ChecksOwnKey { get; } = new("checks-own-key");

    /// <summary>Only callers with an admin key.</summary>
    public static Access Admin { get; } = new("admin");

    public string Name { get; }
}

internal static class AccessConventions
{
    public static TBuilder WithAccess<TBuilder>(this TBuilder builder, Access access)
        where TBuilder : IEndpointConventionBuilder => builder.WithMetadata(access);
}

/// <summary>
/// The door every request to an endpoint passes, deny by default: unless the endpoint is marked public, it refuses
/// pages of other origins, resolves the caller (or answers 401 in the API's own shape), keeps admin endpoints to
/// admin keys, and leaves the caller on the request. It goes by the endpoint routing matched, not by the path's
/// spelling, so no casing or new route slips past it.
/// </summary>
internal sealed class AccessGate(RequestDelegate next, Authenticator authenticator, IOptions<AnteroomOptions> options)
{
    private readonly HashSet<string> _allowedOrigins = new(options.Value.Cors.Origins, StringComparer.OrdinalIgnoreCase);

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var endpoint = context.GetEndpoint();
        var access = endpoint?.Metadata.GetMetadata<Access>();
        // No endpoint: nothing runs (404 or 405 follow); preflights belong to CORS.
        if (endpoint is null || access == Access.Public || HttpMethods.IsOptions(request.Method))
        {
            return next(context);
        }

        var surface = ApiSurfaces.Of(request);
        if (!IsOriginAllowed(request))
        {
            return ApiSurfaces.Error(surface, StatusCodes.Status403Forbidden, "origin_not_allowed",
                $"Pages from {request.Headers.Origin} may not call this API; the operator can allow them in Anteroom:Cors:Origins.").ExecuteAsync(context);
        }

        if (access == Access.ChecksOwnKey)
        {
            return next(context);
        }

        var authentication = authenticator.Authenticate(context);
        if (authentication.Caller is not { } caller)
        {
            if (authentication.Status == StatusCodes.Status401Unauthorized)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"anteroom\"";
            }

            return RetryAfterResult.Wrap(ApiSurfaces.Error(surface, authentication.Status, authentication.Code, authentication.Message), authentication.RetryAfter)
                .ExecuteAsync(context);
        }

        if (access == Access.Admin && !caller.IsAdmin)
        {
            return ApiSurfaces.Error(surface, StatusCodes.Status403Forbidden, "admin_only",
                "The admin endpoints need an admin key ('anteroom keys create --admin').").ExecuteAsync(context);
        }

        context.Features.Set(caller);
        return next(context);
    }

    /// <summary>
    /// A browser names the page's origin on cross-origin calls. The session cookies are SameSite already; this
    /// also stops another site's page from spending a user's place in the queue through a key it was given. The
    /// scheme is not compared: behind a TLS-terminating proxy the page is https while Anteroom sees http.
    /// </summary>
    private bool IsOriginAllowed(HttpRequest request)
    {
        string origin = request.Headers.Origin.ToString();
        if (origin.Length == 0 || _allowedOrigins.Contains(origin))
        {
            return true;
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) &&
            string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }
}
