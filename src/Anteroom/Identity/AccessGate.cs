using Anteroom.Configuration;
using Anteroom.Gateway;
using Microsoft.Extensions.Options;

namespace Anteroom.Identity;

/// <summary>
/// The door every API call passes: refuses pages of other origins, resolves the caller (or answers 401 in the
/// API's own shape), keeps the admin endpoints to admin keys, and leaves the caller on the request for endpoints.
/// </summary>
internal sealed class AccessGate(RequestDelegate next, Authenticator authenticator, IOptions<AnteroomOptions> options)
{
    private readonly HashSet<string> _allowedOrigins = new(options.Value.Cors.Origins, StringComparer.OrdinalIgnoreCase);

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var surface = ApiSurfaces.Of(request);
        // Pages and files need no identity; preflights belong to CORS.
        if (surface == ApiSurface.Page || HttpMethods.IsOptions(request.Method))
        {
            return next(context);
        }

        if (!IsOriginAllowed(request))
        {
            return ApiSurfaces.Error(surface, StatusCodes.Status403Forbidden, "origin_not_allowed",
                $"Pages from {request.Headers.Origin} may not call this API; the operator can allow them in Anteroom:Cors:Origins.").ExecuteAsync(context);
        }

        // The session endpoints check keys themselves: they are where a browser without one gets one.
        if (request.Path.StartsWithSegments("/session", StringComparison.Ordinal))
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

            return ApiSurfaces.Error(surface, authentication.Status, authentication.Code, authentication.Message).ExecuteAsync(context);
        }

        if (request.Path.StartsWithSegments("/admin", StringComparison.Ordinal) && !caller.IsAdmin)
        {
            return ApiSurfaces.Error(surface, StatusCodes.Status403Forbidden, "admin_only",
                "The admin endpoints need an admin key ('anteroom keys create --admin').").ExecuteAsync(context);
        }

        context.Features.Set(caller);
        return next(context);
    }

    /// <summary>
    /// A browser names the page's origin on cross-origin calls. The session cookies are SameSite already; this
    /// also stops another site's page from spending a user's place in the queue through a key it was given.
    /// </summary>
    private bool IsOriginAllowed(HttpRequest request)
    {
        string origin = request.Headers.Origin.ToString();
        if (origin.Length == 0 || _allowedOrigins.Contains(origin))
        {
            return true;
        }

        return string.Equals(origin, $"{request.Scheme}://{request.Host}", StringComparison.OrdinalIgnoreCase);
    }
}
