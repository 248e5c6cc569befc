namespace Anteroom.Storage;

internal sealed partial class PostgresStore
{
    public async Task RevokeSessionAsync(string id, DateTimeOffset at, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        // Sessions whose cookies have expired cannot come back, so their rows go as new ones arrive.
        await using var command = Command("""
            DELETE FROM revoked_sessions WHERE expires_at < @at;
            INSERT INTO revoked_sessions (id, revoked_at, expires_at) VALUES (@id, @at, @expires)
            ON CONFLICT (id) DO NOTHING;
            """)
            .With("id", id)
            .With("at", ToUnixMs(at))
            .With("expires", ToUnixMs(expiresAt));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    // Synchronous, like FindKey: a single primary-key lookup on the request's path (behind a short cache).
    public bool IsSessionRevoked(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        using var command = Command("SELECT 1 FROM revoked_sessions WHERE id = @id;").With("id", id);
        return command.ExecuteScalar() is not null;
    }
}
