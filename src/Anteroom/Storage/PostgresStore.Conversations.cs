using Npgsql;

namespace Anteroom.Storage;

internal sealed partial class PostgresStore
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
        await using var command = Command("""
            INSERT INTO conversations (id, owner, title, created_at, updated_at) VALUES (@id, @owner, @title, @at, @at)
            ON CONFLICT (owner, id) DO NOTHING
            RETURNING id, owner, title, created_at, updated_at, 0::bigint;
            """)
            .With("id", id)
            .With("owner", owner)
            .With("title", title)
            .With("at", ToUnixMs(at));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        // The stored row, so the result carries the stored (millisecond) times.
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? ReadConversation(reader)
            : throw new InvalidOperationException($"A conversation with id '{id}' already exists for '{owner}'.");
    }

    public async Task<IReadOnlyList<Conversation>> ListConversationsAsync(string owner, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        await using var command = Command($"{ConversationSelect} WHERE c.owner = @owner ORDER BY c.updated_at DESC, c.id COLLATE \"C\";")
            .With("owner", owner);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
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
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
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

        // One statement, so the ownership check and the messages come from one snapshot; the outer row tells an
        // empty conversation (a row of NULLs) from one that is not the owner's (no row at all).
        // The last N are taken newest first by the primary key, then put back in ascending order.
        await using var command = Command($"""
            SELECT m.{MessageColumns.Replace(", ", ", m.", StringComparison.Ordinal)}
            FROM conversations c
            LEFT JOIN LATERAL (
                SELECT {MessageColumns} FROM messages
                WHERE conversation_id = c.pk
                ORDER BY seq DESC
                LIMIT @last
            ) m ON true
            WHERE c.owner = @owner AND c.id = @id
            ORDER BY m.seq;
            """)
            .With("owner", owner)
            .With("id", id)
            .With("last", (long?)last);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        List<ConversationMessage>? messages = null;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            messages ??= [];
            if (!reader.IsDBNull(0))
            {
                messages.Add(ReadMessage(reader));
            }
        }

        return messages;
    }

    public async Task<Conversation?> RenameConversationAsync(
        string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(title);
        await using var command = Command("""
            UPDATE conversations c SET title = @title, updated_at = greatest(c.updated_at, @at)
            WHERE c.owner = @owner AND c.id = @id
            RETURNING c.id, c.owner, c.title, c.created_at, c.updated_at,
                      (SELECT count(*) FROM messages m WHERE m.conversation_id = c.pk);
            """)
            .With("owner", owner)
            .With("id", id)
            .With("title", title)
            .With("at", ToUnixMs(at));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadConversation(reader) : null;
    }

    public async Task<bool> DeleteConversationAsync(string owner, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        // The messages go with it: ON DELETE CASCADE.
        await using var command = Command("DELETE FROM conversations WHERE owner = @owner AND id = @id;")
            .With("owner", owner)
            .With("id", id);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<bool> AppendMessageAsync(string owner, string id, NewMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(owner);
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(message);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // Moving the update time first locks the conversation's row before the max(seq) read, so concurrent appends
        // (from this gateway or another) queue up behind it and each sees the one before it.
        await using (var touch = Command(connection, """
            UPDATE conversations SET updated_at = greatest(updated_at, @at)
            WHERE owner = @owner AND id = @id
            RETURNING pk;
            """, transaction))
        {
            // greatest: a turn stamped by a slightly slower clock must not move the conversation back in the list.
            touch.With("owner", owner).With("id", id).With("at", ToUnixMs(message.At));
            if (await touch.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not long pk)
            {
                return false;
            }

            await using var insert = Command(connection, $"""
                INSERT INTO messages (conversation_id, {MessageColumns})
                SELECT @pk, coalesce(max(seq), 0) + 1, @role, @content, @at, @request, @model, @finish
                FROM messages WHERE conversation_id = @pk;
                """, transaction)
                .With("pk", pk)
                .With("role", message.Role)
                .With("content", message.Content)
                .With("at", ToUnixMs(message.At))
                .With("request", message.RequestId)
                .With("model", message.Model)
                .With("finish", message.FinishReason);
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<int> ForgetConversationsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        // In bounded steps, so no single transaction holds many rows' locks (or the appends waiting on them) for long.
        const int Step = 1_000;
        int total = 0;
        await using var command = Command("""
            DELETE FROM conversations WHERE pk IN (SELECT pk FROM conversations WHERE updated_at < @cutoff LIMIT @step);
            """)
            .With("cutoff", ToUnixMs(cutoff))
            .With("step", Step);
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
        NpgsqlConnection connection, NpgsqlTransaction? transaction, string owner, string id, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, $"{ConversationSelect} WHERE c.owner = @owner AND c.id = @id;", transaction)
            .With("owner", owner)
            .With("id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? ReadConversation(reader) : null;
    }

    private static Conversation ReadConversation(NpgsqlDataReader reader) => new(
        Id: reader.GetString(0),
        Owner: reader.GetString(1),
        Title: reader.GetString(2),
        CreatedAt: FromUnixMs(reader.GetInt64(3)),
        UpdatedAt: FromUnixMs(reader.GetInt64(4)),
        MessageCount: (int)reader.GetInt64(5));

    private static ConversationMessage ReadMessage(NpgsqlDataReader reader) => new(
        Seq: reader.GetInt64(0),
        Role: reader.GetString(1),
        Content: reader.GetString(2),
        At: FromUnixMs(reader.GetInt64(3)),
        RequestId: GetNullableString(reader, 4),
        Model: GetNullableString(reader, 5),
        FinishReason: GetNullableString(reader, 6));
}
