using Anteroom.Backends;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>
/// Carries one request to its ending: waits for a slot while publishing its position, runs the generation on the
/// backend it was given, relays the tokens, and says how it ended — completed, failed, cancelled or timed out —
/// with the slot freed on every path. It does not end the request: <see cref="RequestLife"/> does, with the ending
/// this returns.
/// </summary>
internal sealed partial class GenerationRunner(IRequestQueue queue, IBackendPool pool, TimeProvider time, ILogger<GenerationRunner> log)
{
    /// <summary>Runs the request until it has an ending, and returns it; sets what the ending reports on the request.</summary>
    public async Task<RequestEnding> RunAsync(LiveRequest request)
    {
        try
        {
            while (true)
            {
                var dispatch = await WaitForSlotAsync(request);
                if (dispatch.Lease is not { } lease)
                {
                    return await EndWithoutSlotAsync(request, dispatch.Outcome);
                }

                if (await AttemptAsync(request, lease) is { } ending)
                {
                    return ending;
                }
            }
        }
        catch (Exception exception)
        {
            // A bug, not a backend failure: still end the request and free what it holds.
            LogRunnerFailed(exception, request.Id);
            await queue.CancelAsync(request.Id);
            return InternalError(request);
        }
    }

    /// <summary>The ending of a request that Anteroom itself failed to run.</summary>
    public static RequestEnding InternalError(LiveRequest request) =>
        EndFailed(request, new RequestFailure("internal_error", "Anteroom failed to run this request."));

    private async Task<Dispatch> WaitForSlotAsync(LiveRequest request)
    {
        var ticket = request.Ticket;
        var dispatched = queue.WaitForSlotAsync(ticket, request.Stopping).AsTask();
        WaitingPlace? published = null;
        while (!dispatched.IsCompleted)
        {
            // Read the version before the place: a change after this read wakes the wait below.
            long version = queue.ChangeVersion;
            if (await TryGetPlaceAsync(ticket.Id) is { } place && IsWorthTelling(published, place))
            {
                published = place;
                request.Events.Append(
                    new RequestEvent.Queued(ticket.Id, place.Position, place.QueueLength, (long)place.EstimatedWait.TotalMilliseconds));
            }

            await Task.WhenAny(dispatched, queue.WaitForChangeAsync(version).AsTask());
        }

        return await dispatched;
    }

    /// <summary>
    /// The ticket's place, or null when the queue cannot tell it now (Redis mode, with Redis away). The place is news
    /// for the holder, not part of the wait: failing to read it must not end a request that may still get its slot,
    /// so the last place told stands until the queue answers again.
    /// </summary>
    private async ValueTask<WaitingPlace?> TryGetPlaceAsync(string id)
    {
        try
        {
            return await queue.GetPlaceAsync(id);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            LogPlaceUnknown(id, exception.Message);
            return null;
        }
    }

    /// <summary>Tell the holder when its position or the queue length moves, or the estimate shifts noticeably.</summary>
    private static bool IsWorthTelling(WaitingPlace? published, WaitingPlace place)
    {
        if (published is not { } last)
        {
            return true;
        }

        if (last.Position != place.Position || last.QueueLength != place.QueueLength)
        {
            return true;
        }

        double drift = Math.Abs((place.EstimatedWait - last.EstimatedWait).TotalMilliseconds);
        return drift >= Math.Max(2000, 0.2 * last.EstimatedWait.TotalMilliseconds);
    }

    /// <summary>Runs one dispatch attempt. Returns null when the ticket went back to the queue for another attempt.</summary>
    private async Task<RequestEnding?> TranslateAsync(LiveRequest request, SlotLease lease, CancellationToken cancellationToken)
    {
        var ticket = request.Ticket;
        int tokens = 0;

        await foreach (var chunk in pool.Client(lease.Backend).StreamChatAsync(request.Generation, cancellationToken))
        {
            switch (chunk.Kind)
            {
                case GenerationChunkKind.Token:
                    if (tokens++ == 0)
                    {
                        lease.MarkFirstToken();
                        request.FirstTokenAt = lease.FirstTokenAt;
                    }

                    request.GeneratedTokens = tokens;

                    request.Text.Append(chunk.Text);
                    request.Events.Append(new RequestEvent.Token(chunk.Text!));
                    break;

                case GenerationChunkKind.Done:
                    pool.ReportSuccess(lease, request.HealthSampled);
                    return EndCompleted(request, lease, chunk.FinishReason ?? "stop", chunk.Usage ?? new GenerationUsage(ticket.PromptTokens, tokens));

                case GenerationChunkKind.Error:
                    var error = chunk.Error!;
                    pool.ReportFailure(lease, error, request.HealthSampled);
                    if (tokens == 0)
                    {
                        return TryRetry(request, lease, error);
                    }

                    lease.Fail();
                    return EndFailed(request, new RequestFailure("backend_error", $"Backend {lease.Backend} failed mid-answer: {error.Message}"));
            }
        }

        // The client contract ends every stream with done or error; treat anything else as a lost backend.
        lease.Fail();
        return EndFailed(request, new RequestFailure("backend_error", "The backend stream ended early."));
    }

    /// <summary>
    /// Runs one dispatch attempt in the mode its backend calls for, with the request's stop and the ticket's abort
    /// linked into the backend call. A stopped attempt ends as cancelled; the slot is freed on every path. Returns
    /// null when the ticket went back to the queue for another attempt.
    /// </summary>
    private async Task<RequestEnding?> AttemptAsync(LiveRequest request, SlotLease lease)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(request.Stopping, request.Ticket.Aborted);
        try
        {
            AppendStarted(request, lease);
            return Mode(request, lease) switch
            {
                RunMode.Relay => await RelayAsync(request, lease, run.Token),
                RunMode.Embed => await EmbedAsync(request, lease, run.Token),
                _ => await TranslateAsync(request, lease, run.Token),
            };
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested)
        {
            lease.Cancel();
            return EndCancelled(request);
        }
        finally
        {
            // Ends the lease as cancelled only if the attempt did not end it: the slot is free on every path.
            lease.Dispose();
            // After the slot is free, so a trial allowed again can take it.
            pool.EndAttempt(lease);
        }
    }

    private enum RunMode
    {
        Translate,
        Relay,
        Embed,
    }

    /// <summary>Same protocol on both sides: relay bytes. Otherwise translate (or embed through the backend's own API).</summary>
    private RunMode Mode(LiveRequest request, SlotLease lease)
    {
        var arrival = request.Arrival;
        var backendProtocol = pool.Protocol(lease.Backend);
        bool sameProtocol = (arrival.Protocol, backendProtocol) is
            (ClientProtocol.OpenAI, BackendProtocol.OpenAI) or (ClientProtocol.Ollama, BackendProtocol.Ollama);
        if (arrival.Relay is not null && sameProtocol)
        {
            return RunMode.Relay;
        }

        return arrival.EmbeddingInputs is null ? RunMode.Translate : RunMode.Embed;
    }

    private void AppendStarted(LiveRequest request, SlotLease lease)
    {
        var ticket = request.Ticket;
        request.StartedAt = lease.StartedAt;
        request.Events.Append(
            new RequestEvent.Started(ticket.Id, lease.Backend, ticket.Model, Milliseconds(lease.StartedAt - ticket.ArrivedAt), ticket.Attempts));
    }

    /// <summary>
    /// Relays the client's own body to a backend of the same protocol and the backend's bytes back unchanged,
    /// counting generated pieces as they pass. Returns null when the ticket went back to the queue.
    /// </summary>
    private async Task<RequestEnding?> RelayAsync(LiveRequest request, SlotLease lease, CancellationToken cancellationToken)
    {
        var ticket = request.Ticket;
        var payload = request.Arrival.Relay!;
        int pieces = 0;
        bool relayed = false;
        RelayChunk? head = null;
        RelayChunk? errorHead = null;
        byte[]? errorBody = null;
        await foreach (var chunk in pool.Client(lease.Backend).RelayAsync(new RelayRequest(payload.Path, payload.Body, payload.Streaming), cancellationToken))
        {
            switch (chunk.Kind)
            {
                case RelayChunkKind.Head when chunk.StatusCode >= 400:
                    // Held back: a backend failure may still be retried elsewhere before the client sees it.
                    errorHead = chunk;
                    break;

                case RelayChunkKind.Head:
                    head = chunk;
                    break;

                case RelayChunkKind.Data when errorHead is not null:
                    errorBody = chunk.Bytes.ToArray();
                    break;

                case RelayChunkKind.Data:
                    if (chunk.ContentPieces > 0 && pieces == 0)
                    {
                        lease.MarkFirstToken();
                        request.FirstTokenAt = lease.FirstTokenAt;
                    }

                    pieces += chunk.ContentPieces;
                    request.GeneratedTokens = pieces;
                    if (!relayed)
                    {
                        // From the first relayed byte on, the client's answer is this backend's.
                        request.RelayedStatus = head?.StatusCode ?? StatusCodes.Status200OK;
                        request.RelayedContentType = head?.ContentType;
                        relayed = true;
                    }

                    request.Events.Append(new RequestEvent.Relayed(chunk.Bytes.ToArray()));
                    break;

                case RelayChunkKind.Done:
                    pool.ReportSuccess(lease, request.HealthSampled);
                    return EndCompleted(request, lease, chunk.FinishReason ?? "stop", chunk.Usage ?? new GenerationUsage(ticket.PromptTokens, pieces));

                case RelayChunkKind.Failed:
                    var error = chunk.Error!;
                    pool.ReportFailure(lease, error, request.HealthSampled);
                    if (!relayed && IsWorthRetrying(error))
                    {
                        return TryRetry(request, lease, error);
                    }

                    lease.Fail();
                    if (!relayed && errorHead is { } refusal)
                    {
                        // The backend refused the request itself (a 4xx): the client gets its answer as it was.
                        request.RelayedStatus = refusal.StatusCode;
                        request.RelayedContentType = refusal.ContentType;
                        request.Events.Append(new RequestEvent.Relayed(errorBody ?? []));
                        return EndFailed(request, new RequestFailure("backend_error", error.Message, RelayedToClient: true));
                    }

                    return EndFailed(request, new RequestFailure(CodeOf(error), error.Message, chunk.ErrorWasRelayed));
            }
        }

        lease.Fail();
        return EndFailed(request, new RequestFailure("backend_error", "The backend stream ended early."));
    }

    /// <summary>Embeds through the backend's own API (the client spoke the other protocol).</summary>
    private async Task<RequestEnding?> EmbedAsync(LiveRequest request, SlotLease lease, CancellationToken cancellationToken)
    {
        var ticket = request.Ticket;
        var result = await pool.Client(lease.Backend).EmbedAsync(ticket.Model, request.Arrival.EmbeddingInputs!, cancellationToken);
        if (result.Error is { } error)
        {
            pool.ReportFailure(lease, error, request.HealthSampled);
            if (IsWorthRetrying(error))
            {
                return TryRetry(request, lease, error);
            }

            lease.Fail();
            return EndFailed(request, new RequestFailure("backend_error", error.Message));
        }

        pool.ReportSuccess(lease, request.HealthSampled);
        lease.MarkFirstToken();
        request.Embeddings = result.Vectors;
        return EndCompleted(request, lease, "stop", new GenerationUsage(result.PromptTokens, 0));
    }

    /// <summary>
    /// A backend's own refusal of the request (a 4xx) would be the same anywhere, and so would an answer too large to
    /// hold; anything else may not be.
    /// </summary>
    private static bool IsWorthRetrying(BackendError error) =>
        error.Failure != BackendFailure.TooLarge && (error.Failure != BackendFailure.ErrorStatus || error.StatusCode is null or >= 500);

    private static string CodeOf(BackendError error) => error.Failure == BackendFailure.TooLarge ? "answer_too_large" : "backend_error";

    /// <summary>
    /// After a failure before anything reached the client: puts the ticket back for another backend (null). When
    /// that is not possible (attempts used up, or the request was stopped meanwhile) the ticket has ended, and this
    /// says how the request ends.
    /// </summary>
    private RequestEnding? TryRetry(LiveRequest request, SlotLease lease, BackendError error)
    {
        LogRetrying(request.Id, lease.Backend, error.Failure);
        if (lease.TryRequeue())
        {
            return null;
        }

        if (request.Ticket.Outcome == TicketOutcome.Cancelled)
        {
            return EndCancelled(request);
        }

        return EndFailed(request, new RequestFailure(
            "backend_error", $"No backend could serve this request after {request.Ticket.Attempts} attempts; last: {error.Message}"));
    }

    private static RequestEnding EndFailed(LiveRequest request, RequestFailure failure)
    {
        request.Failure = failure;
        long? retryAfterMs = failure.RetryAfter is { } retry ? (long)Math.Ceiling(retry.TotalMilliseconds) : null;
        return new RequestEvent.Error(failure.Code, failure.Message, retryAfterMs);
    }

    /// <summary>
    /// A stopped request: cancelled, as its client or an operator asked, or — stopped because the gateway is
    /// stopping — failed, with when to send it again, since nobody asked for it to end.
    /// </summary>
    private static RequestEnding EndCancelled(LiveRequest request) => request.StopReason == Draining.Reason
        ? EndFailed(request, Draining.Failure)
        : new RequestEvent.Cancelled(request.StopReason);

    private RequestEnding EndCompleted(LiveRequest request, SlotLease lease, string finishReason, GenerationUsage usage)
    {
        lease.Complete(usage.PromptTokens, usage.CompletionTokens);
        request.Usage = usage;
        request.FinishReason = finishReason;
        var done = Done(request, lease, finishReason, usage);
        request.Timings = done.Timings;
        return done;
    }

    private async Task<RequestEnding> EndWithoutSlotAsync(LiveRequest request, TicketOutcome outcome)
    {
        if (outcome == TicketOutcome.TimedOut)
        {
            var waited = time.GetUtcNow() - request.Ticket.ArrivedAt;
            var retryAfter = await queue.EstimateWaitAsync(request.Ticket.Model);
            return EndFailed(request, new RequestFailure("timeout", $"Waited {waited.TotalSeconds:0.#} s for a slot without getting one.")
            {
                RetryAfter = retryAfter is { } wait && wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retryAfter,
            });
        }

        if (outcome == TicketOutcome.Failed)
        {
            // Only a shared queue fails a ticket that never ran: its store (Redis) came back empty and the ticket
            // went with it. Nothing ran and the queue is back, so the client may send it again at once; reporting
            // it as cancelled would blame a client that asked for nothing.
            return EndFailed(request, new RequestFailure(
                "queue_lost", "The queue lost this request before it got a slot (the Redis it waited in restarted empty); nothing ran, so send it again.")
            {
                RetryAfter = TimeSpan.FromSeconds(1),
            });
        }

        return EndCancelled(request);
    }

    private RequestEvent.Done Done(LiveRequest request, SlotLease lease, string finishReason, GenerationUsage usage)
    {
        var ticket = request.Ticket;
        var now = time.GetUtcNow();
        long? ttft = lease.FirstTokenAt is { } first ? Milliseconds(first - lease.StartedAt) : null;
        var generating = now - (lease.FirstTokenAt ?? now);
        double? tokensPerSecond = usage.CompletionTokens > 1 && generating > TimeSpan.Zero
            ? Math.Round((usage.CompletionTokens - 1) / generating.TotalSeconds, 1)
            : null;
        return new RequestEvent.Done(
            finishReason,
            usage,
            new TimingsBody(
                Milliseconds((ticket.FirstDispatchedAt ?? lease.StartedAt) - ticket.ArrivedAt),
                ttft,
                Milliseconds(now - lease.StartedAt),
                Milliseconds(now - ticket.ArrivedAt),
                tokensPerSecond));
    }

    internal static long Milliseconds(TimeSpan span) => (long)Math.Max(0, span.TotalMilliseconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId} failed inside Anteroom")]
    private partial void LogRunnerFailed(Exception exception, string requestId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Request {RequestId} waits on without a new place: {Reason}")]
    private partial void LogPlaceUnknown(string requestId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} failed on {Backend} before its first token ({Failure}); trying again")]
    private partial void LogRetrying(string requestId, string backend, BackendFailure failure);
}
