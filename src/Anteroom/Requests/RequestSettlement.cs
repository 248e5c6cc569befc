using Anteroom.Configuration;
using Anteroom.Limits;
using Anteroom.Scheduling;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

namespace Anteroom.Requests;

/// <summary>
/// What a request leaves behind. An ended one: its tokens settled against its rate limit, its entry in the request
/// log and the access log, its metrics, and a conversation's answer stored. A refused one: its entry and metrics.
/// </summary>
internal sealed partial class RequestSettlement(
    IRateLimiter rates,
    IRequestLog requestLog,
    RequestAccessLog accessLog,
    IRequestMetrics metrics,
    IConversationStore conversations,
    IOptions<AnteroomOptions> options,
    TimeProvider time,
    ILogger<RequestSettlement> log)
{
    private readonly RefusalLogBudget _refusalLog = new(options.Value.Data.MaxRefusalsLoggedPerUserPerMinute, time);

    /// <summary>Settles an ended request; <paramref name="userTurn"/> is the storing of the message it answers.</summary>
    public async Task SettleAsync(LiveRequest request, RateLimit limit, Task<bool> userTurn)
    {
        var usage = request.Usage;
        // A request that never reached a backend used nothing; backends' own counts are trusted only as far as sense.
        int tokensIn = Math.Max(0, usage?.PromptTokens ?? (request.StartedAt is null ? 0 : request.Ticket.PromptTokens));
        int tokensOut = Math.Max(0, usage?.CompletionTokens ?? request.GeneratedTokens);
        await rates.SettleAsync(request.Owner, limit, request.Arrival.ReservedTokens, tokensIn + tokensOut);
        var entry = LogEntry(request, tokensIn, tokensOut);
        requestLog.Record(entry);
        accessLog.Finished(entry);
        metrics.Ended(request, tokensOut);

        try
        {
            if (await userTurn && request.Arrival.Conversation is { } ended && AnswerTurn(request) is { } answer)
            {
                await conversations.AppendMessageAsync(request.Owner, ended.Id, answer);
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            LogConversationNotStored(exception, request.Id);
        }
    }

    /// <summary>Records a request turned away at the door.</summary>
    public void Refused(string id, Arrival ask, Denial denial)
    {
        var caller = ask.Caller;
        // The console gets the refusals the request log gets: a caller hammering at a limit is not a line per try.
        if (_refusalLog.TryTake(caller.Owner))
        {
            var entry = new RequestLogEntry(
                id, time.GetUtcNow(), caller.Owner, caller.KeyId, caller.TierName, ApiName(ask.Protocol), ask.Generation.Model,
                null, "refused", denial.Code, 0, null, 0, 0, 0);
            requestLog.Record(entry);
            accessLog.Refused(entry);
        }

        metrics.Refused(denial.Code);
    }

    /// <summary>The API's name as the request log and the access log show it.</summary>
    public static string ApiName(ClientProtocol protocol) => protocol switch
    {
        ClientProtocol.OpenAI => "openai",
        ClientProtocol.Ollama => "ollama",
        _ => "native",
    };

    /// <summary>The answer to store: a completed one, or whatever text a stopped or failed one had produced.</summary>
    private NewMessage? AnswerTurn(LiveRequest request)
    {
        string text = request.Text.ToString();
        string? finish = request.Ticket.Outcome switch
        {
            TicketOutcome.Completed => request.FinishReason ?? "stop",
            _ when text.Length == 0 => null,
            TicketOutcome.Cancelled => "cancelled",
            _ => "error",
        };
        return finish is null ? null : new NewMessage("assistant", text, request.EndedAt ?? time.GetUtcNow(), request.Id, request.Ticket.Model, finish);
    }

    private RequestLogEntry LogEntry(LiveRequest request, int tokensIn, int tokensOut)
    {
        var ticket = request.Ticket;
        var caller = request.Caller;
        var ended = request.EndedAt ?? time.GetUtcNow();
        var dispatched = ticket.FirstDispatchedAt;
        long? ttft = request.FirstTokenAt is { } first && request.StartedAt is { } started ? GenerationRunner.Milliseconds(first - started) : null;
        string outcome = ticket.Outcome switch
        {
            TicketOutcome.Completed => "completed",
            TicketOutcome.Failed => "failed",
            TicketOutcome.TimedOut => "timed_out",
            _ => request.Failure is null ? "cancelled" : "failed",
        };
        string? reason = request.Failure?.Code ?? (outcome == "cancelled" ? request.StopReason : null);
        return new RequestLogEntry(
            request.Id, ticket.ArrivedAt, caller.Owner, caller.KeyId, caller.TierName, ApiName(request.Arrival.Protocol), ticket.Model,
            ticket.Backend, outcome, reason,
            GenerationRunner.Milliseconds((dispatched ?? ended) - ticket.ArrivedAt), ttft,
            dispatched is { } start ? GenerationRunner.Milliseconds(ended - start) : 0,
            tokensIn, tokensOut);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The answer to request {RequestId} could not be stored in its conversation")]
    private partial void LogConversationNotStored(Exception exception, string requestId);
}
