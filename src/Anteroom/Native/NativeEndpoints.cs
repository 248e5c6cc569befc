using System.Globalization;
using System.Text.Json;
using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.DropIn;
using Anteroom.Gateway;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

namespace Anteroom.Native;

/// <summary>Anteroom's own API: chat with a live queue position, request status, replay and cancel.</summary>
internal static partial class NativeEndpoints
{
    public static void MapNativeApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/chat/stream", ChatStreamAsync);
        app.MapPost("/chat", ChatAsync);
        app.MapGet("/queue/requests", MineAsync);
        app.MapDelete("/queue/requests", CancelMineAsync);
        app.MapGet("/queue/requests/{id}/events", EventsAsync);
        app.MapGet("/queue/requests/{id}", StatusAsync);
        app.MapDelete("/queue/requests/{id}", CancelAsync);
        app.MapGet("/queue/status", QueueStatusOfAsync);
        app.MapGet("/models", Models);
        app.MapConversations();
    }

    private static async Task ChatStreamAsync(
        HttpContext context, Reception reception, IConversationStore conversations, IOptions<AnteroomOptions> options, TimeProvider time)
    {
        var (request, hold, problem) = await AdmitAsync(context, reception, conversations, options.Value);
        // This connection's hold on the request: released when the handler ends, however it ends.
        using var held = hold;
        if (request is null)
        {
            await problem!.ExecuteAsync(context);
            return;
        }

        EventStream.PrepareHeaders(context.Response, request.Id);
        await FollowAsync(context, request, 0, options.Value);
    }

    private static async Task ChatAsync(HttpContext context, Reception reception, IConversationStore conversations, IOptions<AnteroomOptions> options)
    {
        var (request, hold, problem) = await AdmitAsync(context, reception, conversations, options.Value);
        // This connection's hold on the request: released when the handler ends, however it ends.
        using var held = hold;
        if (request is null)
        {
            await problem!.ExecuteAsync(context);
            return;
        }

        RequestEnding ending;
        try
        {
            ending = await request.Ended.WaitAsync(context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        context.Response.Headers["X-Request-Id"] = request.Id;
        await EndingResult(request, ending).ExecuteAsync(context);
    }

    private static async Task<IResult> QueueStatusOfAsync(HttpContext context, IRequestQueue requestQueue, BackendsView backends, TimeProvider time)
    {
        string caller = context.Caller().Owner;
        var snapshot = await requestQueue.GetSnapshotAsync(context.RequestAborted);
        var now = time.GetUtcNow();
        var queue = (await requestQueue.GetWaitingAsync(limitPerModel: 100, context.RequestAborted)).Select(w =>
        {
            bool yours = string.Equals(w.Owner, caller, StringComparison.Ordinal);
            // Other users' requests show where they stand, never who they are, what they asked nor their ids.
            return new QueueEntry(
                w.Position, w.Model, yours ? "you" : "another user",
                GenerationRunner.Milliseconds(now - w.ArrivedAt), yours, yours ? w.Id : null);
        }).ToList();

        return Results.Json(new QueueStatus(
            requestQueue.Policy == SchedulingPolicy.Fifo ? "fifo" : "fair",
            backends.Simulated,
            snapshot.Waiting,
            snapshot.Running,
            snapshot.PeakRunning,
            snapshot.Admitted,
            snapshot.Completed,
            snapshot.Failed,
            snapshot.Cancelled,
            snapshot.TimedOut,
            snapshot.Refused,
            snapshot.RefusedByReason.ToDictionary(r => Denial.CodeOf(r.Key), r => r.Value),
            snapshot.Requeued,
            new WaitStatus(
                GenerationRunner.Milliseconds(snapshot.Wait.P50),
                GenerationRunner.Milliseconds(snapshot.Wait.P95),
                GenerationRunner.Milliseconds(snapshot.Wait.P99),
                snapshot.Wait.Samples),
            ModelStatuses(snapshot),
            BackendStatuses(snapshot, backends),
            queue), NativeJson.Default.QueueStatus);
    }

    /// <summary>Each model's queue and slots, as the queue status and the admin views show them.</summary>
    internal static IReadOnlyList<ModelStatus> ModelStatuses(SchedulerSnapshot snapshot) =>
        [.. snapshot.Models.Select(m => new ModelStatus(m.Model, m.Waiting, m.Running, m.Slots, GenerationRunner.Milliseconds(m.EstimatedServiceTime)))];

    /// <summary>Each backend's slots, health, models and use, as the queue status and the admin views show them.</summary>
    internal static IReadOnlyList<BackendStatus> BackendStatuses(SchedulerSnapshot snapshot, BackendsView backends) =>
        [.. snapshot.Backends.Select(b => new BackendStatus(
            b.Name, backends.ProtocolName(b.Name), b.Slots, b.Running, b.Healthy, b.Models, b.Completed, Math.Round(b.Utilisation, 4)))];

    private static IResult Models(HttpContext context, IRequestQueue queue, Reception reception, BackendsView backends)
    {
        var caller = context.Caller();
        var models = queue.Models.Where(caller.MayUse).Order(StringComparer.Ordinal).ToList();
        string defaultModel = models.Contains(reception.DefaultModel) || models.Count == 0 ? reception.DefaultModel : models[0];
        return Results.Json(new ModelsList(models, defaultModel, backends.Simulated), NativeJson.Default.ModelsList);
    }

    private static async Task FollowAsync(HttpContext context, IFollowedRequest request, long afterId, AnteroomOptions options)
    {
        try
        {
            await EventStream.FollowAsync(
                context.Response, request, afterId, TimeSpan.FromSeconds(options.Stream.KeepAliveSeconds), context.RequestAborted);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            // The client left; once its holds are released (the follower's, and the admitting handler's when it
            // returns) the request stops, unless it asked for a reconnect grace.
        }
        catch (RequestOwnerLostException)
        {
            // The replica running it died: drop the stream as that replica's own connections dropped. The client
            // reconnects with its Last-Event-ID, and the request is then taken over here or its log ended.
            context.Abort();
        }
    }

    /// <summary>Reads and admits a chat; the caller disposes the returned hold when its handler ends.</summary>
    private static async Task<(LiveRequest? Request, LiveRequest.Attachment? Hold, IResult? Problem)> AdmitAsync(
        HttpContext context, Reception reception, IConversationStore conversations, AnteroomOptions options)
    {
        var (body, problem) = await ReadChatAsync(context, reception);
        if (body is null)
        {
            return (null, null, problem);
        }

        var caller = context.Caller();
        var generation = body.Generation;
        ConversationTurn? turn = null;
        bool titleFromMessage = false;
        if (body.ConversationId is { } conversationId)
        {
            var history = await conversations.ReadMessagesAsync(caller.Owner, conversationId, options.Conversations.MaxHistoryMessages, context.RequestAborted);
            if (history is null)
            {
                return (null, null, ConversationEndpoints.NotFound(conversationId));
            }

            titleFromMessage = history.Count == 0 &&
                await conversations.FindConversationAsync(caller.Owner, conversationId, context.RequestAborted) is { Title: ConversationEndpoints.DefaultTitle };
            generation = generation with { Messages = [.. Bounded(history, options.Conversations.MaxHistoryTokens), .. generation.Messages] };
            turn = new ConversationTurn(conversationId, body.Generation.Messages[^1].Content);
        }

        var reply = await reception.AdmitAsync(new Arrival(caller, generation)
        {
            ReconnectGrace = body.ReconnectGrace,
            MaxWait = body.MaxWait,
            Conversation = turn,
        });
        if (reply.Request is null)
        {
            return (null, null, Refused(reply.Denial!));
        }

        // Only a message that was admitted (and so is stored) names the conversation. Not cancelled with the
        // connection: the request is admitted now, and the hold returned below notices a client that left.
        if (titleFromMessage)
        {
            try
            {
                await conversations.RenameConversationAsync(
                    caller.Owner, turn!.Id, ConversationEndpoints.TitleFrom(turn.Message), context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow(), CancellationToken.None);
            }
            catch
            {
                // The handler never gets the hold: release it here, or the request would outlive its client.
                reply.Hold?.Dispose();
                throw;
            }
        }

        return (reply.Request, reply.Hold, null);
    }

    /// <summary>The newest messages of a conversation whose estimated tokens fit the budget, in order.</summary>
    private static IEnumerable<ChatMessage> Bounded(IReadOnlyList<ConversationMessage> history, int maxTokens)
    {
        int start = history.Count;
        long tokens = 0;
        while (start > 0)
        {
            var previous = history[start - 1];
            tokens += (previous.Content.Length / 4) + 4;
            if (tokens > maxTokens)
            {
                break;
            }

            start--;
        }

        return history.Skip(start).Select(m => new ChatMessage(m.Role, m.Content));
    }

    private sealed record ChatBody(GenerationRequest Generation, TimeSpan ReconnectGrace, TimeSpan? MaxWait, string? ConversationId);

    private static async Task<(ChatBody? Body, IResult? Problem)> ReadChatAsync(HttpContext context, Reception reception)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            return (null, Problem(problem!));
        }

        using (body)
        {
            var root = body.Root;

            var messages = new List<ChatMessage>();
            if (root.TryGetProperty("messages", out var history) && history.ValueKind != JsonValueKind.Null)
            {
                if (history.ValueKind != JsonValueKind.Array)
                {
                    return Invalid("messages", "must be an array of {\"role\", \"content\"} objects");
                }

                int index = 0;
                foreach (var item in history.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Object ||
                        !item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String ||
                        role.GetString() is not ("system" or "user" or "assistant") ||
                        !item.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    {
                        return Invalid($"messages[{index}]", "must be an object with a role of 'system', 'user' or 'assistant' and a string content");
                    }

                    messages.Add(new ChatMessage(role.GetString()!, content.GetString()!));
                    index++;
                }
            }

            if (!TryGetString(root, "message", out string? message))
            {
                return Invalid("message", "must be a string");
            }

            if (string.IsNullOrWhiteSpace(message) && messages.Count == 0)
            {
                return Invalid("message", "is required: the text to send to the model");
            }

            if (!string.IsNullOrWhiteSpace(message))
            {
                messages.Add(new ChatMessage("user", message));
            }

            if (!TryGetString(root, "model", out string? model))
            {
                return Invalid("model", "must be a string naming a model (GET /models lists them)");
            }

            if (!TryGetInt(root, "max_tokens", 1, 1_000_000, out int? maxTokens))
            {
                return Invalid("max_tokens", "must be a whole number from 1 to 1000000");
            }

            if (!TryGetInt(root, "reconnect_grace_ms", 0, int.MaxValue, out int? graceMs))
            {
                return Invalid("reconnect_grace_ms", "must be a whole number of milliseconds, zero or more");
            }

            if (!TryGetInt(root, "max_wait_ms", 1, int.MaxValue, out int? maxWaitMs))
            {
                return Invalid("max_wait_ms", "must be a whole number of milliseconds, at least 1");
            }

            if (!TryGetString(root, "conversation_id", out string? conversationId) || conversationId is { Length: 0 })
            {
                return Invalid("conversation_id", "must be the id of one of your conversations (POST /conversations creates one)");
            }

            if (conversationId is not null && (messages.Count != 1 || string.IsNullOrWhiteSpace(message)))
            {
                return Invalid("messages", "cannot be given with 'conversation_id': the conversation is the history; send only 'message'");
            }

            var generation = new GenerationRequest
            {
                Model = string.IsNullOrWhiteSpace(model) ? reception.DefaultModel : model,
                Messages = messages,
                MaxOutputTokens = maxTokens,
            };
            return (new ChatBody(
                generation,
                TimeSpan.FromMilliseconds(graceMs ?? 0),
                maxWaitMs is { } wait ? TimeSpan.FromMilliseconds(wait) : null,
                conversationId), null);
        }
    }

    private static (ChatBody?, IResult?) Invalid(string field, string what) =>
        (null, Error(StatusCodes.Status400BadRequest, "invalid_request", $"'{field}' {what}.", field));

    private static bool TryGetString(JsonElement root, string name, out string? value)
    {
        value = null;
        if (!root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        value = element.GetString();
        return true;
    }

    private static bool TryGetInt(JsonElement root, string name, int min, int max, out int? value)
    {
        value = null;
        if (!root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out int number) || number < min || number > max)
        {
            return false;
        }

        value = number;
        return true;
    }

    private static IResult EndingResult(LiveRequest request, RequestEnding ending)
    {
        switch (ending)
        {
            case RequestEvent.Done done:
                return Results.Json(new ChatResult(
                    request.Id, request.Ticket.Model, request.Ticket.Backend ?? "", request.Text.ToString(), done.FinishReason, EventStream.Usage(done.Usage), done.Timings),
                    NativeJson.Default.ChatResult);
            case RequestEvent.Cancelled cancelled:
                return Error(StatusCodes.Status409Conflict, "cancelled", $"The request was cancelled ({cancelled.Reason}).");
            default:
                var failure = request.Failure!;
                long? retryMs = failure.RetryAfter is { } retry ? (long)Math.Ceiling(retry.TotalMilliseconds) : null;
                return RetryAfterResult.Wrap(Error(failure.HttpStatus, failure.Code, failure.Message, retryAfterMs: retryMs), failure.RetryAfter);
        }
    }

    internal static IResult Refused(Denial denial)
    {
        long? retryMs = denial.RetryAfter is { } retry ? Math.Max(1, (long)Math.Ceiling(retry.TotalMilliseconds)) : null;
        return RetryAfterResult.Wrap(Error(denial.Status, denial.Code, denial.Message, denial.Field, retryMs), denial.RetryAfter);
    }

    private static IResult NotFound(string id) =>
        Error(StatusCodes.Status404NotFound, "not_found", $"No request '{id}' of yours is known here.");

    /// <summary>A body that could not be read, in the native error shape.</summary>
    internal static IResult Problem(BodyProblem problem) => Error(problem.Status, problem.Code, problem.Message, problem.Field);

    internal static IResult Error(int status, string code, string message, string? field = null, long? retryAfterMs = null) =>
        Results.Json(new ErrorBody(new ErrorDetail(code, message, field, retryAfterMs)), NativeJson.Default.ErrorBody, statusCode: status);
}
