using Anteroom.Storage;

namespace Anteroom.Requests;

/// <summary>
/// The access log an operator greps: one line per finished request and one per logged refusal, in the category
/// <see cref="Category"/> at Information, with the same fields as the request log's entry. The framework's own
/// per-exchange lines stay at Warning (see appsettings.json), so this is the only line a request costs.
/// </summary>
internal sealed partial class RequestAccessLog(ILoggerFactory loggers)
{
    /// <summary>The category of the lines, to raise or lower them alone (<c>Logging:LogLevel:Anteroom.Requests</c>).</summary>
    public const string Category = "Anteroom.Requests";

    private readonly ILogger _log = loggers.CreateLogger(Category);

    /// <summary>A request that was admitted and has ended, however it ended.</summary>
    public void Finished(RequestLogEntry entry) => LogFinished(
        _log, entry.RequestId, entry.Outcome, entry.Owner, entry.Model, entry.Backend, entry.Reason, entry.WaitedMs,
        entry.TimeToFirstTokenMs, entry.RanMs, entry.TokensIn, entry.TokensOut, entry.Api);

    /// <summary>A request turned away at the door; <see cref="RequestLogEntry.Reason"/> is the refusal's code.</summary>
    public void Refused(RequestLogEntry entry) => LogRefused(_log, entry.RequestId, entry.Owner, entry.Model, entry.Reason, entry.Api);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} {Outcome}: user={User} model={Model} backend={Backend} reason={Reason} " +
        "waited_ms={WaitedMs} ttft_ms={TimeToFirstTokenMs} ran_ms={RanMs} tokens_in={TokensIn} tokens_out={TokensOut} api={Api}")]
    private static partial void LogFinished(
        ILogger logger, string requestId, string outcome, string user, string model, string? backend, string? reason, long waitedMs,
        long? timeToFirstTokenMs, long ranMs, int tokensIn, int tokensOut, string api);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} refused: user={User} model={Model} code={Code} api={Api}")]
    private static partial void LogRefused(ILogger logger, string requestId, string user, string model, string? code, string api);
}
