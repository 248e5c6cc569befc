using Anteroom.Configuration;

namespace Anteroom.Identity;

/// <summary>
/// Who is asking, as resolved once per HTTP request: the identity fair share, limits and ownership apply to, its
/// tier, and what its key allows.
/// </summary>
/// <param name="Owner">
/// The identity itself: <c>user:NAME</c> (an API key's user), <c>app:NAME/END-USER</c> (an end user named by a
/// trusted application key), <c>browser:HASH</c> (a browser session) or <c>ip:ADDRESS</c>.
/// </param>
/// <param name="Name">How the caller is shown: the user's name, or a short browser or address label.</param>
/// <param name="TierName">The tier whose limits apply.</param>
/// <param name="Tier">That tier's limits.</param>
/// <param name="KeyId">The public id of the key it came with, if any.</param>
/// <param name="IsAdmin">Reaches the admin endpoints and may see and cancel anyone's requests.</param>
/// <param name="CanActForUsers">An application key that may name the end user it forwards.</param>
internal sealed record Caller(
    string Owner, string Name, string TierName, TierOptions Tier, string? KeyId, bool IsAdmin, bool CanActForUsers)
{
    /// <summary>The longest end-user name an application may give.</summary>
    public const int MaxEndUserLength = 128;

    /// <summary>
    /// The end user an application key forwards, limited and queued apart from the application's other users.
    /// Only a key allowed to act for users may do this; anyone else stays who they are. The end user lives under
    /// the application's own name, so no application can pass itself off as a user with a key of their own.
    /// </summary>
    public Caller ActingFor(string? endUser)
    {
        if (!CanActForUsers || string.IsNullOrWhiteSpace(endUser))
        {
            return this;
        }

        string user = endUser.Trim();
        return this with { Owner = $"app:{Name}/{user}", Name = $"{user} (via {Name})", IsAdmin = false, CanActForUsers = false };
    }

    /// <summary>How an identity is shown to the operator.</summary>
    public static string NameOf(string owner)
    {
        int colon = owner.IndexOf(':', StringComparison.Ordinal);
        string kind = colon < 0 ? "" : owner[..colon];
        string rest = owner[(colon + 1)..];
        return kind switch
        {
            "app" when rest.IndexOf('/', StringComparison.Ordinal) is > 0 and var slash => $"{rest[(slash + 1)..]} (via {rest[..slash]})",
            "browser" => "browser " + rest[..Math.Min(6, rest.Length)],
            _ => rest,
        };
    }

    /// <summary>Whether an end-user name is acceptable: short, printable.</summary>
    public static bool IsValidEndUser(string value) =>
        value.Trim().Length is > 0 and <= MaxEndUserLength && !value.Any(char.IsControl);

    /// <summary>Whether the caller may see or cancel a request or conversation of <paramref name="owner"/>.</summary>
    public bool MayActOn(string owner) => IsAdmin || string.Equals(owner, Owner, StringComparison.Ordinal);

    /// <summary>Whether the tier allows this model.</summary>
    public bool MayUse(string model) => Tier.Models.Count == 0 || Tier.Models.Contains(model, StringComparer.Ordinal);
}

internal static class CallerContext
{
    /// <summary>The caller the access gate resolved for this HTTP request.</summary>
    public static Caller Caller(this HttpContext context) =>
        context.Features.Get<Caller>() ?? throw new InvalidOperationException("No caller was resolved for this request; is the access gate in the pipeline?");
}
