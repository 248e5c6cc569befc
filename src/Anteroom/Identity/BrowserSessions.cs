using System.Security.Cryptography;
using System.Text;
using Anteroom.Configuration;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace Anteroom.Identity;

/// <summary>What a request's browser session cookie amounts to.</summary>
internal readonly record struct SessionLookup(string? Owner, string? Name, TimeSpan? RefusedFor)
{
    /// <summary>No cookie, or one Anteroom did not issue: the caller is its address.</summary>
    public static SessionLookup None => default;

    public bool IsRefused => RefusedFor is not null;
}

/// <summary>
/// Browsers' sessions in open mode. A session is 128 random bits that only Anteroom can mint: the cookie carries
/// them protected by the data directory's key ring, so an invented cookie is no session (and its request is its
/// address), while an issued one keeps working across restarts. Each session is a user with its own fair share,
/// so one address may hold only <see cref="AuthOptions.MaxSessionsPerAddress"/> of them at once — held meaning
/// used within <see cref="IdleWindow"/>. Holdings live in memory: after a restart an issued cookie is held again
/// on its first use, if its address has room.
/// </summary>
internal sealed class BrowserSessions(IDataProtectionProvider protection, IOptions<AnteroomOptions> options, TimeProvider time)
{
    public const string CookieName = "anteroom_session";

    /// <summary>How long an unused session still counts against its address.</summary>
    public static readonly TimeSpan IdleWindow = TimeSpan.FromMinutes(15);

    /// <summary>
    /// The most addresses whose sessions are tracked at once, which bounds this table's memory (a few MiB). Past it,
    /// idle holdings are swept first; an address still finding no room is refused like a full one.
    /// </summary>
    public const int MaxAddresses = 100_000;

    private const string IssuedItem = "Anteroom.IssuedSession";

    private readonly IDataProtector _protector = protection.CreateProtector("Anteroom.BrowserSession.v1");
    private readonly int _maxPerAddress = options.Value.Auth.MaxSessionsPerAddress;
    private readonly Lock _lock = new();
    // Address → session id → when it was last used.
    private readonly Dictionary<string, Dictionary<string, DateTimeOffset>> _held = new(StringComparer.Ordinal);
    private DateTimeOffset _lastSweep = time.GetUtcNow();

    /// <summary>The message of a refusal: sharing an identity would share conversations, so only a key helps.</summary>
    public string TooManyMessage =>
        $"Too many browsers at your address are using Anteroom at once ({_maxPerAddress} at most). Try again later, " +
        "or ask the operator for an API key.";

    /// <summary>The request's session, held for its address; none when it has no cookie Anteroom issued.</summary>
    public SessionLookup Find(HttpContext context)
    {
        string? id = context.Items[IssuedItem] as string;
        if (id is null)
        {
            if (!context.Request.Cookies.TryGetValue(CookieName, out var cookie) || Unprotect(cookie) is not { } unprotected)
            {
                return SessionLookup.None;
            }

            id = unprotected;
        }

        return Hold(AddressOf(context), id) is { } refusedFor
            ? new SessionLookup(null, null, refusedFor)
            : Identify(id);
    }

    /// <summary>
    /// Gives a browser a session if it has none Anteroom issued, unless its address holds the most it may; then the
    /// refusal, and no cookie.
    /// </summary>
    public SessionLookup Ensure(HttpContext context)
    {
        var existing = Find(context);
        if (existing.Owner is not null || existing.IsRefused)
        {
            return existing;
        }

        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        if (Hold(AddressOf(context), id) is { } refusedFor)
        {
            return new SessionLookup(null, null, refusedFor);
        }

        context.Response.Cookies.Append(CookieName, CookieValue(id), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = context.Request.IsHttps,
            Path = "/",
            MaxAge = TimeSpan.FromDays(30),
            IsEssential = true,
        });
        // The page's own first request already counts as this browser, whatever cookie it came with.
        context.Items[IssuedItem] = id;
        return Identify(id);
    }

    /// <summary>The cookie of session <paramref name="id"/>, as this server issues it.</summary>
    public string CookieValue(string id) => _protector.Protect(id);

    private static SessionLookup Identify(string id)
    {
        // The identity is a hash, so neither logs nor other users ever see the session itself.
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(id)))[..16];
        return new SessionLookup("browser:" + hash, "browser " + hash[..6], null);
    }

    /// <summary>Marks the session used by the address; how long until it could be, when the address is full.</summary>
    private TimeSpan? Hold(string address, string id)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (now - _lastSweep >= IdleWindow)
            {
                Sweep(now);
            }

            if (!_held.TryGetValue(address, out var sessions))
            {
                if (_held.Count >= MaxAddresses)
                {
                    Sweep(now);
                    if (_held.Count >= MaxAddresses)
                    {
                        return IdleWindow;
                    }
                }

                sessions = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
                _held[address] = sessions;
            }

            if (!sessions.ContainsKey(id))
            {
                ForgetIdle(sessions, now);
                if (sessions.Count >= _maxPerAddress)
                {
                    var oldest = sessions.Values.Min();
                    return oldest + IdleWindow - now;
                }
            }

            sessions[id] = now;
            return null;
        }
    }

    private void Sweep(DateTimeOffset now)
    {
        _lastSweep = now;
        foreach (var (address, sessions) in _held.ToList())
        {
            ForgetIdle(sessions, now);
            if (sessions.Count == 0)
            {
                _held.Remove(address);
            }
        }
    }

    private static void ForgetIdle(Dictionary<string, DateTimeOffset> sessions, DateTimeOffset now)
    {
        foreach (var (id, lastUsed) in sessions.ToList())
        {
            if (now - lastUsed >= IdleWindow)
            {
                sessions.Remove(id);
            }
        }
    }

    private static string AddressOf(HttpContext context) => ClientAddress.Of(context);

    private string? Unprotect(string value)
    {
        try
        {
            string id = _protector.Unprotect(value);
            return IsSessionId(id) ? id : null;
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    private static bool IsSessionId(string value) => value is { Length: 32 } && value.All(char.IsAsciiHexDigitLower);
}
