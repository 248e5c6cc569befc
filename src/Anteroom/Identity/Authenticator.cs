using System.Globalization;
using System.Security.Cryptography;
using Anteroom.Configuration;
using Anteroom.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace Anteroom.Identity;

/// <summary>The caller, or why it may not call: a status, a code and a message to show it.</summary>
internal readonly record struct Authentication(Caller? Caller, int Status, string Code, string Message, TimeSpan? RetryAfter = null)
{
    public static Authentication Allowed(Caller caller) => new(caller, StatusCodes.Status200OK, "", "");

    public static Authentication Denied(int status, string code, string message, TimeSpan? retryAfter = null) => new(null, status, code, message, retryAfter);
}

/// <summary>
/// Resolves who is asking: an API key (<c>Authorization: Bearer</c> or <c>X-Api-Key</c>), else a key the browser
/// saved in its protected cookie, else — in open mode only — the browser session or the client address. Keys are
/// looked up on every request (through a cache of at most <c>Auth:KeyCacheMilliseconds</c>), so a revoked or
/// expired key stops working within that time, whoever revoked it. A saved key
/// cookie is one sign-in with its own id, so signing out ends that sign-in on the server, copies of the cookie
/// included.
/// </summary>
internal sealed class Authenticator(
    IKeyStore keys,
    IOptions<AnteroomOptions> options,
    IDataProtectionProvider protection,
    BrowserSessions sessions,
    SignedOutSessions signedOut,
    TimeProvider time)
{
    public const string KeyCookie = "anteroom_key";
    public const string EndUserHeader = "X-Anteroom-User";
    private const string KeyHeader = "X-Api-Key";

    private static readonly TimeSpan KeyCookieLifetime = TimeSpan.FromDays(30);

    // v1 cookies held the bare key and could not be signed out; they no longer read, and their browsers sign in again.
    private readonly ITimeLimitedDataProtector _cookieProtector = protection.CreateProtector("Anteroom.KeyCookie.v2").ToTimeLimitedDataProtector();
    private readonly AnteroomOptions _options = options.Value;

    public bool RequiresKeys => _options.Auth.RequiresKeys();

    public Authentication Authenticate(HttpContext context)
    {
        var request = context.Request;
        var result = Resolve(request);
        if (result.Caller is not { CanActForUsers: true } caller)
        {
            return result;
        }

        // An application key forwarding one of its users.
        string endUser = request.Headers[EndUserHeader].ToString();
        if (endUser.Length == 0)
        {
            return result;
        }

        return Caller.IsValidEndUser(endUser)
            ? Authentication.Allowed(caller.ActingFor(endUser))
            : Authentication.Denied(StatusCodes.Status400BadRequest, "invalid_end_user",
                $"{EndUserHeader} must be 1 to {Caller.MaxEndUserLength} printable characters.");
    }

    /// <summary>Checks a key as presented; the caller it speaks for, or why not.</summary>
    public Authentication CheckKey(string token)
    {
        if (!ApiKeySecrets.TryParse(token, out string id, out string secret) ||
            keys.FindKey(id) is not { } key || !ApiKeySecrets.Matches(key, secret))
        {
            return Authentication.Denied(StatusCodes.Status401Unauthorized, "invalid_api_key",
                "The API key is not valid. Keys look like 'ant_…'; ask the operator for one ('anteroom keys create').");
        }

        if (key.RevokedAt is { } revoked)
        {
            return Authentication.Denied(StatusCodes.Status401Unauthorized, "revoked_api_key",
                $"This API key was revoked on {Format(revoked)}.");
        }

        if (key.ExpiresAt is { } expires && expires <= time.GetUtcNow())
        {
            return Authentication.Denied(StatusCodes.Status401Unauthorized, "expired_api_key",
                $"This API key expired on {Format(expires)}.");
        }

        if (_options.FindTier(key.Tier) is not { } tier)
        {
            return Authentication.Denied(StatusCodes.Status403Forbidden, "tier_not_configured",
                $"This key's tier '{key.Tier}' is not configured on this server; ask the operator.");
        }

        return Authentication.Allowed(new Caller("user:" + key.User, key.User, key.Tier, tier, key.Id, key.Admin, key.CanActForUsers));
    }

    /// <summary>
    /// Keeps a checked key in the browser: HttpOnly, SameSite=Strict, protected by the server's own keys, together
    /// with a new sign-in id and an expiry the server checks itself (a copied cookie has no Max-Age to obey).
    /// </summary>
    public void SaveKeyCookie(HttpContext context, string token)
    {
        string signIn = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var expires = time.GetUtcNow() + KeyCookieLifetime;
        context.Response.Cookies.Append(KeyCookie, _cookieProtector.Protect(signIn + "\n" + token, expires), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = context.Request.IsHttps,
            Path = "/",
            MaxAge = KeyCookieLifetime,
            IsEssential = true,
        });
    }

    /// <summary>Ends the browser's sign-in on the server, so no copy of its cookie works any more, and drops the cookie.</summary>
    public async Task SignOutAsync(HttpContext context)
    {
        if (context.Request.Cookies.TryGetValue(KeyCookie, out var saved) && ReadKeyCookie(saved) is { } cookie)
        {
            await signedOut.SignOutAsync(cookie.SignIn, cookie.Expires, context.RequestAborted).ConfigureAwait(false);
        }

        context.Response.Cookies.Delete(KeyCookie, new CookieOptions { Path = "/", SameSite = SameSiteMode.Strict, Secure = context.Request.IsHttps });
    }

    private Authentication Resolve(HttpRequest request)
    {
        string? token = PresentedKey(request);
        // In open mode only a token shaped like an Anteroom key is one: SDKs insist on sending some key, and their
        // placeholders ("ollama", "sk-no-key") must not lock anyone out.
        if (token is not null && (RequiresKeys || ApiKeySecrets.LooksLikeKey(token)))
        {
            return CheckKey(token);
        }

        if (request.Cookies.TryGetValue(KeyCookie, out var saved) && saved.Length > 0)
        {
            if (ReadKeyCookie(saved) is not { } cookie)
            {
                return Authentication.Denied(StatusCodes.Status401Unauthorized, "invalid_api_key",
                    "The key saved in this browser can no longer be read; enter it again.");
            }

            return signedOut.IsSignedOut(cookie.SignIn)
                ? Authentication.Denied(StatusCodes.Status401Unauthorized, "signed_out",
                    "This browser signed out; enter the key again to sign in.")
                : CheckKey(cookie.Token);
        }

        if (RequiresKeys)
        {
            return Authentication.Denied(StatusCodes.Status401Unauthorized, "missing_api_key",
                $"This Anteroom needs an API key: send it as 'Authorization: Bearer ant_…' or '{KeyHeader}: ant_…'.");
        }

        string tierName = _options.Auth.DefaultTier;
        var tier = _options.FindTier(tierName)!;
        var session = sessions.Find(request.HttpContext);
        if (session.RefusedFor is { } refusedFor)
        {
            // Never the address instead: conversations belong to identities, and people behind one address would
            // see each other's.
            return Authentication.Denied(StatusCodes.Status429TooManyRequests, "too_many_sessions", sessions.TooManyMessage, refusedFor);
        }

        if (session.Owner is { } owner)
        {
            return Authentication.Allowed(new Caller(owner, session.Name!, tierName, tier, null, false, false));
        }

        string address = ClientAddress.Of(request.HttpContext);
        return Authentication.Allowed(new Caller("ip:" + address, address, tierName, tier, null, false, false));
    }

    private static string? PresentedKey(HttpRequest request)
    {
        string authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            string token = authorization[7..].Trim();
            return token.Length > 0 ? token : null;
        }

        string header = request.Headers[KeyHeader].ToString().Trim();
        return header.Length > 0 ? header : null;
    }

    /// <summary>The sign-in a key cookie carries; null when it was not issued here, is from an older build, or expired.</summary>
    private (string SignIn, string Token, DateTimeOffset Expires)? ReadKeyCookie(string value)
    {
        string payload;
        DateTimeOffset expires;
        try
        {
            payload = _cookieProtector.Unprotect(value, out expires);
        }
        catch (CryptographicException)
        {
            return null;
        }

        int newline = payload.IndexOf('\n', StringComparison.Ordinal);
        return newline > 0 ? (payload[..newline], payload[(newline + 1)..], expires) : null;
    }

    private static string Format(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
}
