using Anteroom.Configuration;
using Anteroom.Storage;

namespace Anteroom.Identity;

/// <summary>What an operator asks for when creating a key.</summary>
internal sealed record KeyOrder(string? User, string? Tier, TimeSpan? ExpiresIn, bool Admin, bool CanActForUsers);

/// <summary>Creates API keys, for the command line and the admin API alike, after checking what was asked.</summary>
internal sealed class KeyIssuer(IKeyStore keys, AnteroomOptions options, TimeProvider time)
{
    public const int MaxUserLength = 64;

    /// <summary>The new key's token (shown once) and record, or what is wrong with the order.</summary>
    public async Task<(string? Token, StoredKey? Key, string? Problem)> IssueAsync(KeyOrder order, CancellationToken cancellationToken = default)
    {
        string user = order.User?.Trim() ?? "";
        if (user.Length is 0 or > MaxUserLength || !user.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '@'))
        {
            return (null, null, $"The user must be 1 to {MaxUserLength} letters, digits or . _ - @ (got '{order.User}').");
        }

        string tier = string.IsNullOrWhiteSpace(order.Tier) ? options.Auth.DefaultTier : order.Tier.Trim();
        if (options.FindTier(tier) is null)
        {
            string known = string.Join(", ", options.Tiers.Keys.Append(options.Auth.DefaultTier).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
            return (null, null, $"The tier '{tier}' is not configured (Anteroom:Tiers:{tier}); known tiers: {known}.");
        }

        if (order.ExpiresIn is { } expiresIn && expiresIn <= TimeSpan.Zero)
        {
            return (null, null, "The expiry must be in the future.");
        }

        var now = time.GetUtcNow();
        var (token, key) = ApiKeySecrets.Create(user, tier, now, order.ExpiresIn is { } span ? now + span : null, order.Admin, order.CanActForUsers);
        await keys.AddKeyAsync(key, cancellationToken);
        return (token, key, null);
    }

    /// <summary>Reads an expiry such as <c>30d</c>, <c>12h</c>, <c>90m</c> or <c>2w</c>.</summary>
    public static bool TryParseExpiry(string text, out TimeSpan expiry)
    {
        expiry = default;
        if (text.Length < 2 || !int.TryParse(text.AsSpan(0, text.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int amount) || amount < 1)
        {
            return false;
        }

        TimeSpan? unit = char.ToLowerInvariant(text[^1]) switch
        {
            'm' => TimeSpan.FromMinutes(1),
            'h' => TimeSpan.FromHours(1),
            'd' => TimeSpan.FromDays(1),
            'w' => TimeSpan.FromDays(7),
            _ => null,
        };
        if (unit is null || amount > 100 * 365)
        {
            return false;
        }

        expiry = unit.Value * amount;
        return true;
    }
}
