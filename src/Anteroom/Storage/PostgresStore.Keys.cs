using Npgsql;

namespace Anteroom.Storage;

internal sealed partial class PostgresStore
{
    private const string KeyColumns =
        "id, user_name, tier, salt, hash, created_at, expires_at, revoked_at, admin, can_act_for_users";

    public async Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var command = Command($"""
            INSERT INTO api_keys ({KeyColumns})
            VALUES (@id, @user, @tier, @salt, @hash, @created, @expires, @revoked, @admin, @act)
            ON CONFLICT (id) DO NOTHING;
            """)
            .With("id", key.Id)
            .With("user", key.User)
            .With("tier", key.Tier)
            .With("salt", key.Salt)
            .With("hash", key.Hash)
            .With("created", ToUnixMs(key.CreatedAt))
            .With("expires", ToUnixMs(key.ExpiresAt))
            .With("revoked", ToUnixMs(key.RevokedAt))
            .With("admin", key.Admin)
            .With("act", key.CanActForUsers);
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
        {
            throw new InvalidOperationException($"An API key with id '{key.Id}' already exists.");
        }
    }

    // Synchronous, as the interface has it: it runs behind the key cache, a single primary-key lookup.
    public StoredKey? FindKey(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        using var command = Command($"SELECT {KeyColumns} FROM api_keys WHERE id = @id;").With("id", id);
        using var reader = command.ExecuteReader();
        return reader.Read() ? ReadKey(reader) : null;
    }

    public async Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default)
    {
        await using var command = Command($"SELECT {KeyColumns} FROM api_keys ORDER BY created_at, added;");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var keys = new List<StoredKey>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            keys.Add(ReadKey(reader));
        }

        return keys;
    }

    public async Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        await using var command = Command("UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL;")
            .With("id", id)
            .With("at", ToUnixMs(at));
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    private static StoredKey ReadKey(NpgsqlDataReader reader) => new(
        Id: reader.GetString(0),
        User: reader.GetString(1),
        Tier: reader.GetString(2),
        Salt: reader.GetFieldValue<byte[]>(3),
        Hash: reader.GetFieldValue<byte[]>(4),
        CreatedAt: FromUnixMs(reader.GetInt64(5)),
        ExpiresAt: FromUnixMs(reader, 6),
        RevokedAt: FromUnixMs(reader, 7),
        Admin: reader.GetBoolean(8),
        CanActForUsers: reader.GetBoolean(9));
}
