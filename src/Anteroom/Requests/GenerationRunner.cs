using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Anteroom.Backends;
using Anteroom.Gateway;
using Anteroom.Native;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>
/// Carries one request through its life: waits for a slot while publishing its position, runs the generation on
/// the backend it was given, relays the tokens, and ends it exactly once — completed, failed, cancelled or timed
/// out — with the slot freed on every path.
/// </summary>
internal sealed partial class GenerationRunner(Scheduler scheduler, BackendPool pool, TimeProvider time, ILogger<GenerationRunner> log)
{
    public async Task RunAsync(LiveRequest request)
    {
        try
        {
            while (true)
            {
                var dispatch = await WaitForSlotAsync(request);
                if (dispatch.Lease is not { } lease)
                {
                    EndWithoutSlot(request, dispatch.Outcome);
                    return;
                }

                if (!await RunOnBackendAsync(request, lease))
                {
                    return;
                }
            }
        }
        catch (Exception exception)
        {
            // A bug, not a backend failure: still end the request and free what it holds.
            LogRunnerFailed(exception, request.Id);
            scheduler.Cancel(request.Ticket);
            if (!request.Events.IsComplete)
            {
                request.End("error", Serialize(new ErrorEvent("internal_error", "Anteroom failed to run this request.", null), NativeJson.Default.ErrorEvent));
            }
        }
    }

    private async Task<Dispatch> WaitForSlotAsync(LiveRequest request)
    {
        var ticket = request.Ticket;
        var dispatched = scheduler.WaitForSlotAsync(ticket, request.Stopping);
        WaitingPlace? published = null;
        while (!dispatched.IsCompleted)
        {
            // Read the version before the place: a change after this read wakes the wait below.
            long version = scheduler.ChangeVersion;
            if (scheduler.GetPlace(ticket) is { } place && IsWorthTelling(published, place))
            {
                published = place;
                request.Events.Append("queued", Serialize(
                    new QueuedEvent(ticket.Id, place.Position, place.QueueLength, (long)place.EstimatedWait.TotalMilliseconds),
                    NativeJson.Default.QueuedEvent));
            }

            await Task.WhenAny(dispatched, scheduler.WaitForChangeAsync(version));
        }

        return await dispatched;
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

    /// <summary>Runs one dispatch attempt. Returns true when the ticket went back to the queue for another attempt.</summary>
    private async Task<bool> RunOnBackendAsync(LiveRequest request, SlotLease lease)
    {
        var ticket = request.Ticket;
        using var run = CancellationTokenSource.CreateLinkedTokenSource(request.Stopping, ticket.Aborted);
        int tokens = 0;
        try
        {
            request.Events.Append("started", Serialize(
                new StartedEvent(ticket.Id, lease.Backend, ticket.Model, Milliseconds(lease.StartedAt - ticket.ArrivedAt), ticket.Attempts),
                NativeJson.Default.StartedEvent));

            await foreach (var chunk in pool.Client(lease.Backend).StreamChatAsync(request.Generation, run.Token))
            {
                switch (chunk.Kind)
                {
                    case GenerationChunkKind.Token:
                        if (tokens++ == 0)
                        {
                            lease.MarkFirstToken();
                        }

                        request.Text.Append(chunk.Text);
                        request.Events.Append("token", Serialize(new TokenEvent(chunk.Text!), NativeJson.Default.TokenEvent));
                        break;

                    case GenerationChunkKind.Done:
                        pool.ReportSuccess(lease.Backend);
                        var usage = chunk.Usage ?? new GenerationUsage(ticket.PromptTokens, tokens);
                        lease.Complete(usage.PromptTokens, usage.CompletionTokens);
                        request.End("done", Serialize(Done(request, lease, chunk.FinishReason ?? "stop", usage), NativeJson.Default.DoneEvent));
                        return false;

                    case GenerationChunkKind.Error:
                        var error = chunk.Error!;
                        pool.ReportFailure(lease.Backend, error);
                        if (tokens == 0)
                        {
                            return RetryOrEnd(request, lease, error);
                        }

                        lease.Fail();
                        request.End("error", Serialize(
                            new ErrorEvent("backend_error", $"Backend {lease.Backend} failed mid-answer: {error.Message}", null),
                            NativeJson.Default.ErrorEvent));
                        return false;
                }
            }

            // The client contract ends every stream with done or error; treat anything else as a lost backend.
            lease.Fail();
            request.End("error", Serialize(new ErrorEvent("backend_error", "The backend stream ended early.", null), NativeJson.Default.ErrorEvent));
            return false;
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested)
        {
            lease.Cancel();
            request.End("cancelled", Serialize(new CancelledEvent(request.StopReason), NativeJson.Default.CancelledEvent));
            return false;
        }
        finally
        {
            // Ends the lease as cancelled only if no branch above ended it: the slot is free on every path.
            lease.Dispose();
        }
    }

    private bool RetryOrEnd(LiveRequest request, SlotLease lease, BackendError error)
    {
        LogRetrying(request.Id, lease.Backend, error.Failure);
        if (lease.TryRequeue())
        {
            return true;
        }

        var ticket = request.Ticket;
        if (ticket.Outcome == TicketOutcome.Cancelled)
        {
            request.End("cancelled", Serialize(new CancelledEvent(request.StopReason), NativeJson.Default.CancelledEvent));
        }
        else
        {
            request.End("error", Serialize(
                new ErrorEvent("backend_error", $"No backend could start this request after {ticket.Attempts} attempts; last: {error.Message}", null),
                NativeJson.Default.ErrorEvent));
        }

        return false;
    }

    private void EndWithoutSlot(LiveRequest request, TicketOutcome outcome)
    {
        if (outcome == TicketOutcome.TimedOut)
        {
            var waited = time.GetUtcNow() - request.Ticket.ArrivedAt;
            request.End("error", Serialize(
                new ErrorEvent("timeout", $"Waited {waited.TotalSeconds:0} s for a slot without getting one.", null),
                NativeJson.Default.ErrorEvent));
            return;
        }

        request.End("cancelled", Serialize(new CancelledEvent(request.StopReason), NativeJson.Default.CancelledEvent));
    }

    private DoneEvent Done(LiveRequest request, SlotLease lease, string finishReason, GenerationUsage usage)
    {
        var ticket = request.Ticket;
        var now = time.GetUtcNow();
        long? ttft = lease.FirstTokenAt is { } first ? Milliseconds(first - lease.StartedAt) : null;
        var generating = now - (lease.FirstTokenAt ?? now);
        double? tokensPerSecond = usage.CompletionTokens > 1 && generating > TimeSpan.Zero
            ? Math.Round((usage.CompletionTokens - 1) / generating.TotalSeconds, 1)
            : null;
        return new DoneEvent(
            finishReason,
            new UsageBody(usage.PromptTokens, usage.CompletionTokens, usage.TotalTokens),
            new TimingsBody(
                Milliseconds((ticket.FirstDispatchedAt ?? lease.StartedAt) - ticket.ArrivedAt),
                ttft,
                Milliseconds(now - lease.StartedAt),
                Milliseconds(now - ticket.ArrivedAt),
                tokensPerSecond));
    }

    internal static long Milliseconds(TimeSpan span) => (long)Math.Max(0, span.TotalMilliseconds);

    internal static byte[] Serialize<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToUtf8Bytes(value, type);

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId} failed inside Anteroom")]
    private partial void LogRunnerFailed(Exception exception, string requestId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} failed on {Backend} before its first token ({Failure}); trying again")]
    private partial void LogRetrying(string requestId, string backend, BackendFailure failure);
}
