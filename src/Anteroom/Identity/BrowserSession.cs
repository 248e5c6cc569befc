using System.Security.Cryptography;
using System.Text;

namespace Anteroom.Identity;

/// <summary>
/// A browser's session in open mode: a cookie of 128 random bits and nothing else, so it needs no signing key —
/// knowing it is being that browser. The identity derived from it is a hash, so neither logs nor other users ever
/// see the cookie itself.
/// </summary>
internal static class BrowserSession
{
    public const string CookieName = "anteroom_session";

    /// <summary>The browser's identity and label, if it sent a well-formed session cookie.</summary>
    public static (string Owner, string Name)? Of(HttpRequest request)
    {
        if (!request.Cookies.TryGetValue(CookieName, out var session) || !IsSessionId(session))
        {
            return null;
        }

        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(session)))[..16];
        return ("browser:" + hash, "browser " + hash[..6]);
    }

    /// <summary>Gives a browser its session cookie if it has none.</summary>
    public static void Ensure(HttpContext context)
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
        // The page's own first request already counts as this browser (beside any other cookie it sent).
        string others = context.Request.Headers.Cookie.ToString();
        context.Request.Headers.Cookie = others.Length == 0 ? $"{CookieName}={id}" : $"{others}; {CookieName}={id}";
    }

    private static bool IsSessionId(string? value) =>
        value is { Length: 32 } && value.All(char.IsAsciiHexDigitLower);
}
