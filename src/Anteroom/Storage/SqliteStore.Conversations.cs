using Microsoft.Data.Sqlite;

namespace Anteroom.Storage;

internal sealed partial class SqliteStore
{
    // Every query below filters on owner as well as id: another owner's conversation is never matched.
    private const string ConversationSelect = """
        SELECT c.id, c.owner, c.title, c.created_at, c.updated_at,
               (SELECT count(*) FROM messages m WHERE m.conversation_id = c.pk)
        FROM conversations c
        """;

    private const string MessageColumns = "seq, role, content, at, request_id, model, finish_reason";

    public async Task<Conversation> CreateConversationAsync(
        string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(title);
        using var connection = Connect();
        using var command = Command(connection, """
            INSERT INTO conversations (id, owner, title, created_at, updated_at) VALUES (@id, @owner, @title, @at, @at)
            ON CONFLICT (owner, id) DO NOTHING;
            """)
            .With("@id", id)
            .With("@owner", owner)
            .With("@title", title)
            .With("@at", ToUnixMs(at));
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
        {
            throw new InvalidOperationException($"A conversation with id '{id}' already exists for '{owner}'.");
        }

        // Read back rather than echo the arguments, so the result carries the stored (millisecond) times.
        return (await FindConversationAsync(connection, null, owner, id, cancellationToken).ConfigureAwait(false))!;
    }

    public async Task<IReadOnlyList<Conversation>> ListConversationsAsync(string owner, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        using var connection = Connect();
        using var command = Command(connection, $"{ConversationSelect} WHERE c.owner = @owner ORDER BY c.updated_at DESC, c.id;")
            .With("@owner", owner);
        using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var conversations = new List<Conversation>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            conversations.Add(ReadConversation(reader));
        }

        return conversations;
    }

    public async Task<Conversation?> FindConversationAsync(string owner, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        using var connection = Connect();
        return await FindConversationAsync(connection, null, owner, id, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<ConversationMessage>?> ReadMessagesAsync(
        string owner, string id, int? last = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        if (last < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(last), last, "The number of last messages cannot be negative.");
        }

        using var connection = Connect();
        // A read transaction: the ownership check and the messages come from one snapshot.
        using var transaction = connection.BeginTransaction(deferred: true);
        long? pk = FindConversationKey(connection, transaction, owner, id);
        if (pk is null)
        {
            return null;
        }

        // The last N are taken newest first by the index, then put back in ascending order.
        string sql = last is null
            ? $"SELECT {MessageColumns} FROM messages WHERE conversation_id = @pk ORDER BY seq;"
            : $"""
               SELECT {MessageColumns} FROM
                   (SELECT {MessageColumns} FROM messages WHERE conversation_id = @pk ORDER BY seq DESC LIMIT @last)
               ORDER BY seq;
               """;
        using var command = Command(connection, sql, transaction).With("@pk", pk).With("@last", last);
        using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var messages = new List<ConversationMessage>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            messages.Add(ReadMessage(reader));
        }

        return messages;
    }

    public async Task<Conversation?> RenameConversationAsync(
        string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(title);
        using var connection = Connect();
        using var transaction = connection.BeginTransaction(deferred: false);
        using var command = Command(connection, """
            UPDATE conversations SET title = @title, updated_at = max(updated_at, @at) WHERE owner = @owner AND id = @id;
            """, transaction)
            .With("@owner", owner)
            .With("@id", id)
            .With("@title", title)
            .With("@at", ToUnixMs(at));
        if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
        {
            return null;
        }

        var renamed = await FindConversationAsync(connection, transaction, owner, id, cancellationToken).ConfigureAwait(false);
        transaction.Commit();
        return renamed;
    }

    public async Task<bool> DeleteConversationAsync(string owner, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        using var connection = Connect();
        // The messages go with it: ON DELETE CASCADE, with foreign keys switched on for every connection.
        using var command = Command(connection, "DELETE FROM conversations WHERE owner = @owner AND id = @id;")
            .With("@owner", owner)
            .With("@id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<bool> AppendMessageAsync(string owner, string id, NewMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(message);
        using var connection = Connect();
        // Immediate: the write lock is taken before the max(seq) read, so concurrent appends (from this process or
        // another) queue up and each sees the one before it.
        using var transaction = connection.BeginTransaction(deferred: false);
        long? pk = FindConversationKey(connection, transaction, owner, id);
        if (pk is null)
        {
            return false;
        }

        using (var insert = Command(connection, $"""
            INSERT INTO messages (conversation_id, {MessageColumns})
            SELECT @pk, coalesce(max(seq), 0) + 1, @role, @content, @at, @request, @model, @finish
            FROM messages WHERE conversation_id = @pk;
            """, transaction))
        {
            insert.With("@pk", pk)
                .With("@role", message.Role)
                .With("@content", message.Content)
                .With("@at", ToUnixMs(message.At))
                .With("@request", message.RequestId)
                .With("@model", message.Model)
                .With("@finish", message.FinishReason);
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        // max: a turn stamped by a slightly slower clock must not move the conversation back in the list.
        using (var touch = Command(connection, "UPDATE conversations SET updated_at = max(updated_at, @at) WHERE pk = @pk;", transaction))
        {
            touch.With("@pk", pk).With("@at", ToUnixMs(message.At));
            await touch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        transaction.Commit();
        return true;
    }

    public async Task<int> ForgetConversationsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        // In bounded steps, like the request log's retention: other writers wait for the file's one write lock.
        const int Step = 1_000;
        int total = 0;
        using var connection = Connect();
        using var command = Command(connection, """
            DELETE FROM conversations WHERE pk IN (SELECT pk FROM conversations WHERE updated_at < @cutoff LIMIT @step);
            """)
            .With("@cutoff", ToUnixMs(cutoff))
            .With("@step", Step);
        int deleted;
        do
        {
            deleted = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            total += deleted;
        }
        while (deleted == Step);

        return total;
    }

    private static async Task<Conversation?> FindConversationAsync(
        SqliteConnection connection, SqliteTransaction? transaction, string owner, string id, CancellationToken cancellationToken)
    {
        using var command = Command(connection, $"{ConversationSelect} WHERE c.owner = @owner AND c.id = @id;", transaction)
            .With("@owner", owner)
            .With("@id", id);
        using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadConversation(reader) : null;
    }

    private static long? FindConversationKey(SqliteConnection connection, SqliteTransaction transaction, string owner, string id)
    {
        using var command = Command(connection, "SELECT pk FROM conversations WHERE owner = @owner AND id = @id;", transaction)
            .With("@owner", owner)
            .With("@id", id);
        return command.ExecuteScalar() is long pk ? pk : null;
    }

    private static Conversation ReadConversation(SqliteDataReader reader) => new(
        Id: reader.GetString(0),
        Owner: reader.GetString(1),
        Title: reader.GetString(2),
        CreatedAt: FromUnixMs(reader.GetInt64(3)),
        UpdatedAt: FromUnixMs(reader.GetInt64(4)),
        MessageCount: reader.GetInt32(5));

    private static ConversationMessage ReadMessage(SqliteDataReader reader) => new(
        Seq: reader.GetInt64(0),
        Role: reader.GetString(1),
        Content: reader.GetString(2),
        At: FromUnixMs(reader.GetInt64(3)),
        RequestId: GetNullableString(reader, 4),
        Model: GetNullableString(reader, 5),
        FinishReason: GetNullableString(reader, 6));
}
