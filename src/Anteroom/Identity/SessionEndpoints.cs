using System.Text.Json;
using Anteroom.DropIn;
using Anteroom.Gateway;
using Anteroom.Native;

namespace Anteroom.Identity;

/// <summary>
/// The browser's side of identity: who the page is speaking as, and — in keys mode — pasting a key once so it
/// lives in an HttpOnly, SameSite=Strict cookie rather than anywhere a script could read it.
/// </summary>
internal static class SessionEndpoints
{
    public static void MapSession(this IEndpointRouteBuilder app)
    {
        var session = app.MapGroup("/session").WithAccess(Access.ChecksOwnKey);
        session.MapGet("", Current);
        session.MapPost("", SignInAsync);
        session.MapDelete("", async (HttpContext context, Authenticator authenticator) =>
        {
            await authenticator.SignOutAsync(context);
            return Results.NoContent();
        });
    }

    private static IResult Current(HttpContext context, Authenticator authenticator, BrowserSessions sessions)
    {
        if (!authenticator.RequiresKeys && sessions.Ensure(context).RefusedFor is { } refusedFor)
        {
            return RetryAfterResult.Wrap(
                NativeEndpoints.Error(StatusCodes.Status429TooManyRequests, "too_many_sessions", sessions.TooManyMessage), refusedFor);
        }

        var authentication = authenticator.Authenticate(context);
        string mode = authenticator.RequiresKeys ? "keys" : "open";
        return authentication.Caller is { } caller
            ? Results.Json(new SessionBody(mode, caller.KeyId is not null, caller.Name, caller.TierName, caller.IsAdmin, null), NativeJson.Default.SessionBody)
            : Results.Json(new SessionBody(mode, false, null, null, false, authentication.Code), NativeJson.Default.SessionBody);
    }

    private static async Task<IResult> SignInAsync(HttpContext context, Authenticator authenticator)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (problem is { Status: StatusCodes.Status413PayloadTooLarge })
        {
            return NativeEndpoints.Problem(problem);
        }

        // Anything else that is not {"key": "…"} is answered below like a missing key.
        string? key = null;
        using (body)
        {
            if (body?.Root.TryGetProperty("key", out var value) == true && value.ValueKind == JsonValueKind.String)
            {
                key = value.GetString()!.Trim();
            }
        }

        if (string.IsNullOrEmpty(key))
        {
            return NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request", "Send the key as {\"key\": \"ant_…\"}.", "key");
        }

        var authentication = authenticator.CheckKey(key);
        if (authentication.Caller is not { } caller)
        {
            return NativeEndpoints.Error(authentication.Status, authentication.Code, authentication.Message, "key");
        }

        authenticator.SaveKeyCookie(context, key);
        return Results.Json(new SessionBody(authenticator.RequiresKeys ? "keys" : "open", true, caller.Name, caller.TierName, caller.IsAdmin, null), NativeJson.Default.SessionBody);
    }
}
