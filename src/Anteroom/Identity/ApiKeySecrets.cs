using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Anteroom.Storage;

namespace Anteroom.Identity;

/// <summary>
/// The shape of Anteroom API keys, <c>ant_ID_SECRET</c>: a public id to find the key by, and 256 random bits of
/// secret of which only a salted SHA-256 is kept. A slow password hash would add nothing against a secret that
/// cannot be guessed, and would cost every request; the comparison is in constant time.
/// </summary>
internal static class ApiKeySecrets
{
    public const string Prefix = "ant_";
    private const int IdBytes = 8;
    private const int SecretBytes = 32;

    /// <summary>A new key: the token to hand over once, and what is stored of it.</summary>
    public static (string Token, StoredKey Key) Create(
        string user, string tier, DateTimeOffset now, DateTimeOffset? expiresAt, bool admin, bool canActForUsers)
    {
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdBytes));
        string secret = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(SecretBytes));
        byte[] salt = RandomNumberGenerator.GetBytes(16);
        var key = new StoredKey(id, user, tier, salt, Hash(salt, secret), now, expiresAt, null, admin, canActForUsers);
        return ($"{Prefix}{id}_{secret}", key);
    }

    /// <summary>Whether a bearer token claims to be an Anteroom key (anything else is some other client's placeholder).</summary>
    public static bool LooksLikeKey(string token) => token.StartsWith(Prefix, StringComparison.Ordinal);

    public static bool TryParse(string token, out string id, out string secret)
    {
        id = secret = "";
        if (!LooksLikeKey(token) || token.Length != Prefix.Length + (2 * IdBytes) + 1 + 43 || token[Prefix.Length + (2 * IdBytes)] != '_')
        {
            return false;
        }

        id = token.Substring(Prefix.Length, 2 * IdBytes);
        secret = token[(Prefix.Length + (2 * IdBytes) + 1)..];
        return id.All(char.IsAsciiHexDigitLower);
    }

    public static bool Matches(StoredKey key, string secret) =>
        CryptographicOperations.FixedTimeEquals(Hash(key.Salt, secret), key.Hash);

    private static byte[] Hash(byte[] salt, string secret)
    {
        byte[] input = new byte[salt.Length + Encoding.UTF8.GetByteCount(secret)];
        salt.CopyTo(input, 0);
        Encoding.UTF8.GetBytes(secret, input.AsSpan(salt.Length));
        return SHA256.HashData(input);
    }
}
