using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Anteroom.Storage;

/// <summary>
/// The store's schema as an ordered list of scripts. <c>PRAGMA user_version</c> counts how many have been applied,
/// so a database opened by this build is brought up to date, and one from a newer build is refused rather than
/// written with a schema this build does not understand.
/// </summary>
internal static class SqliteMigrations
{
    /// <summary>Append only: an applied script never changes, a change is a new script.</summary>
    private static readonly string[] Scripts =
    [
        """
        CREATE TABLE api_keys (
            id                TEXT    NOT NULL PRIMARY KEY,
            user_name         TEXT    NOT NULL,
            tier              TEXT    NOT NULL,
            salt              BLOB    NOT NULL,
            hash              BLOB    NOT NULL,
            created_at        INTEGER NOT NULL,
            expires_at        INTEGER,
            revoked_at        INTEGER,
            admin             INTEGER NOT NULL,
            can_act_for_users INTEGER NOT NULL
        ) STRICT;

        -- Conversation ids are unique per owner, not globally: another owner's id is as absent as an unused one,
        -- even to a create. Messages point at the surrogate key, which keeps their rows and index small.
        CREATE TABLE conversations (
            pk         INTEGER NOT NULL PRIMARY KEY,
            id         TEXT    NOT NULL,
            owner      TEXT    NOT NULL,
            title      TEXT    NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE (owner, id)
        ) STRICT;
        CREATE INDEX conversations_owner_updated ON conversations (owner, updated_at DESC, id);

        -- The primary key is the (conversation, seq) index, and also forbids two turns sharing a seq.
        CREATE TABLE messages (
            conversation_id INTEGER NOT NULL REFERENCES conversations (pk) ON DELETE CASCADE,
            seq             INTEGER NOT NULL,
            role            TEXT    NOT NULL,
            content         TEXT    NOT NULL,
            at              INTEGER NOT NULL,
            request_id      TEXT,
            model           TEXT,
            finish_reason   TEXT,
            PRIMARY KEY (conversation_id, seq)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE request_log (
            id                 INTEGER NOT NULL PRIMARY KEY,
            request_id         TEXT    NOT NULL,
            at                 INTEGER NOT NULL,
            owner              TEXT    NOT NULL,
            key_id             TEXT,
            tier               TEXT    NOT NULL,
            api                TEXT    NOT NULL,
            model              TEXT    NOT NULL,
            backend            TEXT,
            outcome            TEXT    NOT NULL,
            reason             TEXT,
            waited_ms          INTEGER NOT NULL,
            first_token_ms     INTEGER,
            ran_ms             INTEGER NOT NULL,
            tokens_in          INTEGER NOT NULL,
            tokens_out         INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX request_log_at ON request_log (at);
        CREATE INDEX request_log_owner_at ON request_log (owner, at);
        """,
        """
        -- Signed-out browser sessions, until their cookies would have expired anyway.
        CREATE TABLE revoked_sessions (
            id         TEXT    NOT NULL PRIMARY KEY,
            revoked_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX revoked_sessions_expires ON revoked_sessions (expires_at);
        """,
    ];

    /// <summary>The schema version this build writes.</summary>
    public static int LatestVersion => Scripts.Length;

    /// <summary>
    /// Applies the scripts the database lacks, each in its own transaction together with the version bump, so a
    /// crash leaves the database at some whole version. Throws when the database is newer than this build.
    /// </summary>
    public static void Apply(SqliteConnection connection, string databasePath)
    {
        while (true)
        {
            // An immediate transaction takes the write lock before the version is read, so two processes opening
            // the same new file cannot both apply the same script.
            using var transaction = connection.BeginTransaction(deferred: false);
            int version = ReadVersion(connection, transaction);
            if (version > LatestVersion)
            {
                throw new InvalidOperationException(
                    $"The database '{databasePath}' has schema version {version}, written by a newer Anteroom; " +
                    $"this build knows versions up to {LatestVersion}. Upgrade Anteroom to open it.");
            }

            if (version == LatestVersion)
            {
                return;
            }

            Execute(connection, transaction, Scripts[version]);
            Execute(connection, transaction, $"PRAGMA user_version = {(version + 1).ToString(CultureInfo.InvariantCulture)};");
            transaction.Commit();
        }
    }

    private static int ReadVersion(SqliteConnection connection, SqliteTransaction transaction)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "PRAGMA user_version;";
        return Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static void Execute(SqliteConnection connection, SqliteTransaction transaction, string sql)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
