using System.Security.Cryptography;

namespace Anteroom.Identity;

/// <summary>
/// Who is asking: a browser's session cookie, else the <c>X-User</c> header, else the client address. The
/// cookie holds 128 random bits and nothing else, so it needs no signing key: knowing it is being that browser.
/// </summary>
internal static class CallerIdentity
{
    public const string CookieName = "anteroom_session";
    private const string UserHeader = "X-User";

    public static string Resolve(HttpContext context)
    {
        if (context.Request.Cookies.TryGetValue(CookieName, out var session) && IsSessionId(session))
        {
            return "session:" + session;
        }

        var user = context.Request.Headers[UserHeader].ToString().Trim();
        if (user.Length is > 0 and <= 128)
        {
            return "user:" + user;
        }

        return "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
    }

    /// <summary>Gives a browser its session cookie if it has none.</summary>
    public static void EnsureSessionCookie(HttpContext context)
    {
        if (context.Request.Cookies.TryGetValue(CookieName, out var existing) && IsSessionId(existing))
        {
            return;
        }

        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        context.Response.Cookies.Append(CookieName, id, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = context.Request.IsHttps,
            Path = "/",
            MaxAge = TimeSpan.FromDays(30),
            IsEssential = true,
        });
        // The page's own first request already counts as this browser.
        context.Request.Headers.Cookie = $"{CookieName}={id}";
    }

    /// <summary>What other users may see of an identity.</summary>
    public static string DisplayName(string owner) => owner.StartsWith("session:", StringComparison.Ordinal)
        ? "browser " + owner.AsSpan(8, 6).ToString()
        : owner[(owner.IndexOf(':') + 1)..];

    private static bool IsSessionId(string? value) =>
        value is { Length: 32 } && value.All(char.IsAsciiHexDigitLower);
}
