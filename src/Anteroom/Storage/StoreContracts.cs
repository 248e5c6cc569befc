namespace Anteroom.Storage;

/// <summary>
/// An API key as stored: who it speaks for and what it may do, with only a salted hash of its secret.
/// </summary>
/// <param name="Id">The public part of the key, printed in lists and logs.</param>
/// <param name="User">The user the key speaks for.</param>
/// <param name="Tier">The tier whose limits apply.</param>
/// <param name="Salt">Random salt mixed into <paramref name="Hash"/>.</param>
/// <param name="Hash">SHA-256 of the salt followed by the secret's UTF-8 bytes.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="ExpiresAt">When it stops working, if ever.</param>
/// <param name="RevokedAt">When it was revoked, if it was.</param>
/// <param name="Admin">Reaches the admin endpoints.</param>
/// <param name="CanActForUsers">May name the end user it forwards (an application server).</param>
internal sealed record StoredKey(
    string Id,
    string User,
    string Tier,
    byte[] Salt,
    byte[] Hash,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt,
    bool Admin,
    bool CanActForUsers);

/// <summary>Where API keys live.</summary>
internal interface IKeyStore
{
    /// <summary>Stores a new key; its id must be unused.</summary>
    Task AddKeyAsync(StoredKey key, CancellationToken cancellationToken = default);

    /// <summary>The key with this id, revoked or expired ones included; null when there is none.</summary>
    StoredKey? FindKey(string id);

    /// <summary>Every key, oldest first.</summary>
    Task<IReadOnlyList<StoredKey>> ListKeysAsync(CancellationToken cancellationToken = default);

    /// <summary>Revokes a key; false when there is no such key or it was already revoked.</summary>
    Task<bool> RevokeKeyAsync(string id, DateTimeOffset at, CancellationToken cancellationToken = default);
}

/// <summary>
/// Browser sign-ins ended before their cookies expired: a copy of a signed-out cookie must not keep working, on
/// this server or on another one sharing the database.
/// </summary>
internal interface ISessionStore
{
    /// <summary>Records that session <paramref name="id"/> signed out; kept until its cookie would have expired anyway.</summary>
    Task RevokeSessionAsync(string id, DateTimeOffset at, DateTimeOffset expiresAt, CancellationToken cancellationToken = default);

    /// <summary>Whether session <paramref name="id"/> signed out.</summary>
    bool IsSessionRevoked(string id);
}

/// <summary>A conversation's header: its owner, title and times.</summary>
internal sealed record Conversation(
    string Id, string Owner, string Title, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, int MessageCount);

/// <summary>One stored turn of a conversation.</summary>
/// <param name="Seq">Its order within the conversation, increasing from 1.</param>
/// <param name="Role"><c>user</c> or <c>assistant</c> (or <c>system</c>).</param>
/// <param name="Content">The text.</param>
/// <param name="At">When it was stored.</param>
/// <param name="RequestId">The request that sent or produced it.</param>
/// <param name="Model">The model that answered (assistant turns).</param>
/// <param name="FinishReason">Why the answer ended: <c>stop</c>, <c>length</c>, or <c>cancelled</c> for a stopped one.</param>
internal sealed record ConversationMessage(
    long Seq, string Role, string Content, DateTimeOffset At, string? RequestId, string? Model, string? FinishReason);

/// <summary>A turn to append to a conversation.</summary>
internal sealed record NewMessage(string Role, string Content, DateTimeOffset At, string? RequestId, string? Model, string? FinishReason);

/// <summary>
/// Where conversations live. Every call names the owner: another owner's conversation behaves exactly as one that
/// does not exist.
/// </summary>
internal interface IConversationStore
{
    Task<Conversation> CreateConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>The owner's conversations, most recently updated first.</summary>
    Task<IReadOnlyList<Conversation>> ListConversationsAsync(string owner, CancellationToken cancellationToken = default);

    Task<Conversation?> FindConversationAsync(string owner, string id, CancellationToken cancellationToken = default);

    /// <summary>The conversation's messages in order, only the last <paramref name="last"/> when given; null when not the owner's.</summary>
    Task<IReadOnlyList<ConversationMessage>?> ReadMessagesAsync(string owner, string id, int? last = null, CancellationToken cancellationToken = default);

    Task<Conversation?> RenameConversationAsync(string owner, string id, string title, DateTimeOffset at, CancellationToken cancellationToken = default);

    /// <summary>Deletes the conversation and its messages; false when not the owner's.</summary>
    Task<bool> DeleteConversationAsync(string owner, string id, CancellationToken cancellationToken = default);

    /// <summary>Appends a turn and moves the conversation's update time; false when it is gone or not the owner's.</summary>
    Task<bool> AppendMessageAsync(string owner, string id, NewMessage message, CancellationToken cancellationToken = default);

    /// <summary>Deletes every owner's conversations last updated before <paramref name="cutoff"/>, with their messages; returns how many.</summary>
    Task<int> ForgetConversationsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default);
}

/// <summary>One request as the log keeps it: who, what, where, how long, how much, and how it ended.</summary>
/// <param name="RequestId">The request's id.</param>
/// <param name="At">When it arrived.</param>
/// <param name="Owner">The identity its fair share and limits applied to.</param>
/// <param name="KeyId">The API key it came with, if any.</param>
/// <param name="Tier">The tier whose limits applied.</param>
/// <param name="Api"><c>native</c>, <c>openai</c> or <c>ollama</c>.</param>
/// <param name="Model">The model asked for.</param>
/// <param name="Backend">Where it ran, if it did.</param>
/// <param name="Outcome"><c>completed</c>, <c>failed</c>, <c>cancelled</c>, <c>timed_out</c> or <c>refused</c>.</param>
/// <param name="Reason">The refusal or failure code, if any.</param>
/// <param name="WaitedMs">Time in the queue.</param>
/// <param name="TimeToFirstTokenMs">From the slot to the first token, if one came.</param>
/// <param name="RanMs">Time holding a slot.</param>
/// <param name="TokensIn">Prompt tokens.</param>
/// <param name="TokensOut">Generated tokens.</param>
internal sealed record RequestLogEntry(
    string RequestId,
    DateTimeOffset At,
    string Owner,
    string? KeyId,
    string Tier,
    string Api,
    string Model,
    string? Backend,
    string Outcome,
    string? Reason,
    long WaitedMs,
    long? TimeToFirstTokenMs,
    long RanMs,
    int TokensIn,
    int TokensOut);

/// <summary>Requests and refusals of one user or one tier over a period.</summary>
/// <param name="Name">The owner identity or the tier name.</param>
/// <param name="Requests">Admitted requests (every outcome but refused).</param>
/// <param name="Completed">Admitted requests that completed.</param>
/// <param name="Failed">Admitted requests that failed.</param>
/// <param name="Cancelled">Admitted requests that were cancelled.</param>
/// <param name="TimedOut">Admitted requests that timed out in the queue.</param>
/// <param name="Refused">Requests refused at admission.</param>
/// <param name="RefusedByReason">Refusals counted by their code.</param>
/// <param name="TokensIn">Prompt tokens of admitted requests.</param>
/// <param name="TokensOut">Generated tokens of admitted requests.</param>
/// <param name="WaitP50Ms">Median queue wait of admitted requests.</param>
/// <param name="WaitP95Ms">95th percentile queue wait of admitted requests.</param>
internal sealed record UsageRow(
    string Name,
    long Requests,
    long Completed,
    long Failed,
    long Cancelled,
    long TimedOut,
    long Refused,
    IReadOnlyDictionary<string, long> RefusedByReason,
    long TokensIn,
    long TokensOut,
    long WaitP50Ms,
    long WaitP95Ms);

/// <summary>Queue waits and refusals in one hour.</summary>
internal sealed record WaitHour(DateTimeOffset Hour, long Requests, long Refused, long WaitP50Ms, long WaitP95Ms);

/// <summary>Usage over a period, per user, per tier and per hour.</summary>
internal sealed record UsageReport(
    DateTimeOffset Since, DateTimeOffset Until, IReadOnlyList<UsageRow> Users, IReadOnlyList<UsageRow> Tiers, IReadOnlyList<WaitHour> Hours);

/// <summary>The request log: written in the background, never on a request's path.</summary>
internal interface IRequestLog
{
    /// <summary>Queues an entry to be written; never blocks.</summary>
    void Record(RequestLogEntry entry);

    /// <summary>Completes once every entry recorded before the call is durable.</summary>
    Task FlushAsync(CancellationToken cancellationToken = default);

    /// <summary>Entries that arrived in [since, until), newest first, at most <paramref name="limit"/>, of one owner when given.</summary>
    Task<IReadOnlyList<RequestLogEntry>> ReadRequestsAsync(
        DateTimeOffset since, DateTimeOffset until, string? owner, int limit, CancellationToken cancellationToken = default);

    /// <summary>Usage of the requests that arrived in [since, until).</summary>
    Task<UsageReport> SummarizeAsync(DateTimeOffset since, DateTimeOffset until, CancellationToken cancellationToken = default);

    /// <summary>Deletes the entries that arrived before <paramref name="cutoff"/>; returns how many.</summary>
    Task<int> ForgetRequestsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default);
}

/// <summary>A whole store, as the gateway registers it once and hands out by each interface.</summary>
internal interface IStore : IKeyStore, ISessionStore, IConversationStore, IRequestLog, IAsyncDisposable;
