using System.Globalization;
using Npgsql;

namespace Anteroom.Storage;

/// <summary>
/// The PostgreSQL schema as an ordered list of scripts, recorded in <c>schema_migrations</c> (one row per applied
/// version). Every gateway applies what is missing when it starts, all of it in one transaction under an advisory
/// lock, so replicas starting together apply each script once; a database from a newer build is refused rather than
/// written with a schema this build does not understand.
/// </summary>
internal static class PostgresMigrations
{
    /// <summary>
    /// The advisory lock that serialises schema changes among every Anteroom sharing the database (an arbitrary
    /// constant: the bytes of "anteroom").
    /// </summary>
    private const long SchemaLock = 0x616e_7465_726f_6f6d;

    /// <summary>Append only: an applied script never changes, a change is a new script.</summary>
    private static readonly string[] Scripts =
    [
        """
        -- Times are unix milliseconds, as in the SQLite store, so both stores keep and compare them alike.
        CREATE TABLE api_keys (
            id                text    NOT NULL PRIMARY KEY,
            user_name         text    NOT NULL,
            tier              text    NOT NULL,
            salt              bytea   NOT NULL,
            hash              bytea   NOT NULL,
            created_at        bigint  NOT NULL,
            expires_at        bigint,
            revoked_at        bigint,
            admin             boolean NOT NULL,
            can_act_for_users boolean NOT NULL,
            -- Breaks ties between keys created in the same millisecond by insertion order.
            added             bigint  GENERATED ALWAYS AS IDENTITY
        );

        CREATE TABLE revoked_sessions (
            id         text   NOT NULL PRIMARY KEY,
            revoked_at bigint NOT NULL,
            expires_at bigint NOT NULL
        );
        CREATE INDEX revoked_sessions_expires ON revoked_sessions (expires_at);

        -- Conversation ids are unique per owner, not globally: another owner's id is as absent as an unused one,
        -- even to a create. Messages point at the surrogate key, which keeps their rows and index small.
        CREATE TABLE conversations (
            pk         bigint NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id         text   NOT NULL,
            owner      text   NOT NULL,
            title      text   NOT NULL,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            UNIQUE (owner, id)
        );
        CREATE INDEX conversations_owner_updated ON conversations (owner, updated_at DESC, id);
        -- For the retention sweep across every owner.
        CREATE INDEX conversations_updated ON conversations (updated_at);

        CREATE TABLE messages (
            conversation_id bigint NOT NULL REFERENCES conversations (pk) ON DELETE CASCADE,
            seq             bigint NOT NULL,
            role            text   NOT NULL,
            content         text   NOT NULL,
            at              bigint NOT NULL,
            request_id      text,
            model           text,
            finish_reason   text,
            PRIMARY KEY (conversation_id, seq)
        );

        CREATE TABLE request_log (
            id             bigint  NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_id     text    NOT NULL,
            at             bigint  NOT NULL,
            owner          text    NOT NULL,
            key_id         text,
            tier           text    NOT NULL,
            api            text    NOT NULL,
            model          text    NOT NULL,
            backend        text,
            outcome        text    NOT NULL,
            reason         text,
            waited_ms      bigint  NOT NULL,
            first_token_ms bigint,
            ran_ms         bigint  NOT NULL,
            tokens_in      integer NOT NULL,
            tokens_out     integer NOT NULL
        );
        CREATE INDEX request_log_at ON request_log (at);
        CREATE INDEX request_log_owner_at ON request_log (owner, at);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int LatestVersion => Scripts.Length;

    /// <summary>
    /// Applies the scripts the database lacks, in order, in one transaction with their rows in
    /// <c>schema_migrations</c>: a failure leaves the database as it was. Throws <see cref="StorageStartException"/>
    /// when the database is newer than this build.
    /// </summary>
    public static async Task ApplyAsync(NpgsqlConnection connection, string where, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // Taken before anything is read: a second gateway starting now waits here, then finds the schema applied.
        // Released by the commit or rollback.
        await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(@lock);", cancellationToken, ("lock", SchemaLock)).ConfigureAwait(false);
        await ExecuteAsync(connection, transaction, """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer     NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """, cancellationToken).ConfigureAwait(false);

        int version;
        await using (var read = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM schema_migrations;", connection, transaction))
        {
            version = Convert.ToInt32(await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
        }

        if (version > LatestVersion)
        {
            throw new StorageStartException(
                $"The PostgreSQL database {where} has schema version {version}, written by a newer Anteroom; " +
                $"this build knows versions up to {LatestVersion}. Upgrade Anteroom to use it.");
        }

        for (int next = version + 1; next <= LatestVersion; next++)
        {
            await ExecuteAsync(connection, transaction, Scripts[next - 1], cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, transaction, "INSERT INTO schema_migrations (version) VALUES (@version);", cancellationToken, ("version", next))
                .ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecuteAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
