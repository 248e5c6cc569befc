using Anteroom.Storage;

namespace Anteroom.Tests.Storage;

/// <summary>Keys, messages and request-log entries as the store tests write them.</summary>
internal static class StoreSamples
{
    public static StoredKey Key(string id, DateTimeOffset createdAt, string user = "alice") =>
        new(id, user, "free", [1, 2, 3], [4, 5, 6, 7], createdAt, createdAt.AddDays(30), null, Admin: false, CanActForUsers: true);

    public static NewMessage Message(string content, DateTimeOffset at, string role = "user") =>
        new(role, content, at, "req-" + content, role == "assistant" ? "llama" : null, role == "assistant" ? "stop" : null);

    public static RequestLogEntry Entry(
        string owner, string tier, DateTimeOffset at, string outcome = "completed", string? reason = null,
        long waitedMs = 0, int tokensIn = 0, int tokensOut = 0) =>
        new(Guid.NewGuid().ToString("N"), at, owner, "key-" + owner, tier, "native", "llama", outcome == "refused" ? null : "gpu",
            outcome, reason, waitedMs, outcome == "completed" ? 12 : null, 34, tokensIn, tokensOut);
}
