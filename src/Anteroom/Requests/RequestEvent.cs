using System.Text;
using Anteroom.Backends;

namespace Anteroom.Requests;

/// <summary>
/// One thing a request's holder is told, as values: the closed set of what can happen to a request. Each API turns
/// them into its own wire format at its edge (native SSE, OpenAI chunks, Ollama lines), so a token from the backend
/// is serialized once per client and never parsed back.
/// </summary>
internal abstract record RequestEvent
{
    /// <summary>What an event costs the log beyond its text: the object and its fields, roughly.</summary>
    private protected const int Overhead = 32;

    private protected RequestEvent()
    {
    }

    /// <summary>The event's name in the native API (<c>raw</c> for relayed bytes, which the native API never shows).</summary>
    public abstract string Name { get; }

    /// <summary>The bytes it counts against the log's budget: its text in UTF-8 (or its raw bytes) and a small overhead.</summary>
    public abstract long Size { get; }

    private protected static long Utf8(string? text) => text is null ? 0 : Encoding.UTF8.GetByteCount(text);

    /// <summary>Waiting for a slot: the place in the queue and the estimated wait.</summary>
    public sealed record Queued(string RequestId, int Position, int QueueLength, long EtaMs) : RequestEvent
    {
        public override string Name => "queued";

        public override long Size => Overhead + Utf8(RequestId);
    }

    /// <summary>An attempt got a slot on a backend.</summary>
    public sealed record Started(string RequestId, string Backend, string Model, long WaitedMs, int Attempt) : RequestEvent
    {
        public override string Name => "started";

        public override long Size => Overhead + Utf8(RequestId) + Utf8(Backend) + Utf8(Model);
    }

    /// <summary>A piece of generated text (translate mode).</summary>
    public sealed record Token(string Text) : RequestEvent
    {
        public override string Name => "token";

        // Computed once: the log reads it when the token is appended and again when it is dropped.
        public override long Size { get; } = Overhead + Utf8(Text);
    }

    /// <summary>The backend's own bytes, relayed unchanged to a client of the same protocol.</summary>
    public sealed record Relayed(byte[] Bytes) : RequestEvent
    {
        public override string Name => "raw";

        public override long Size => Bytes.Length;
    }

    /// <summary>The request completed.</summary>
    public sealed record Done(string FinishReason, GenerationUsage Usage, TimingsBody Timings) : RequestEnding
    {
        public override string Name => "done";

        public override long Size => 2 * Overhead + Utf8(FinishReason);
    }

    /// <summary>The request failed or timed out.</summary>
    public sealed record Error(string Code, string Message, long? RetryAfterMs) : RequestEnding
    {
        public override string Name => "error";

        public override long Size => Overhead + Utf8(Code) + Utf8(Message);
    }

    /// <summary>The request was stopped: by its holder, or because its client left.</summary>
    public sealed record Cancelled(string Reason) : RequestEnding
    {
        public override string Name => "cancelled";

        public override long Size => Overhead + Utf8(Reason);
    }
}

/// <summary>
/// How long a completed request waited, took to its first token and generated, as the APIs report it (the native
/// API shows it as is).
/// </summary>
internal sealed record TimingsBody(long WaitedMs, long? TimeToFirstTokenMs, long GenerationMs, long TotalMs, double? TokensPerSecond);

/// <summary>How a request ended, as its holders are told: <see cref="RequestEvent.Done"/>, <see cref="RequestEvent.Error"/> or <see cref="RequestEvent.Cancelled"/>; the last event of its log.</summary>
internal abstract record RequestEnding : RequestEvent
{
    private protected RequestEnding()
    {
    }
}
