using Anteroom.Limits;
using Anteroom.Scheduling;
using Anteroom.Storage;

namespace Anteroom.Requests;

/// <summary>
/// The life of an admitted request, from its admission to its end, in one place: it runs the request
/// (<see cref="GenerationRunner"/>), ends it exactly once with the ending the run gives, settles what it used
/// (<see cref="RequestSettlement"/>), and only then tells its holders. Every run is tracked, so the host's shutdown
/// waits for the running requests to end and be recorded (see <see cref="StopAsync"/>).
/// </summary>
internal sealed partial class RequestLife(
    GenerationRunner runner, RequestSettlement settlement, IConversationStore conversations, ILogger<RequestLife> log) : IHostedService
{
    private int _running;
    private TaskCompletionSource? _drained;

    /// <summary>How many admitted requests have not yet ended and been settled.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Starts running an admitted request; it ends on its own, and shutdown waits for it.</summary>
    public void Start(LiveRequest request, RateLimit limit)
    {
        Interlocked.Increment(ref _running);
        _ = RunAsync(request, limit);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Completes with true once no admitted request is left to end and settle, or with false when
    /// <paramref name="cancellationToken"/> is cancelled first. For a gateway that admits nothing new any more.
    /// </summary>
    public async Task<bool> WhenIdleAsync(CancellationToken cancellationToken)
    {
        // One signal for every caller. The compare-exchange is a full fence before the count is read: a run that
        // ends after this read sees the signal to give.
        var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var drained = Interlocked.CompareExchange(ref _drained, fresh, null) ?? fresh;
        if (Running == 0)
        {
            return true;
        }

        try
        {
            await drained.Task.WaitAsync(cancellationToken);
            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Waits for every running request to end and be settled, bounded by the host's shutdown timeout (through
    /// <paramref name="cancellationToken"/>). The requests were stopped when the application began stopping, so
    /// this is the short wait for their endings to be recorded, not for their answers to finish.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        int running = Running;
        if (running > 0)
        {
            LogWaiting(running);
        }

        if (!await WhenIdleAsync(cancellationToken))
        {
            LogGaveUp(Running);
        }
    }

    /// <summary>
    /// Runs the request, ends it, settles it, then tells its holders how it ended: a client that sees the end (and
    /// sends its next message, or reads its conversation or the log) finds its tokens settled, its entry recorded and
    /// its answer stored.
    /// </summary>
    private async Task RunAsync(LiveRequest request, RateLimit limit)
    {
        try
        {
            // Off the admitting thread: the store's first steps are synchronous, and admission must not wait on them.
            var userTurn = request.Arrival.Conversation is { UserMessageStored: false } turn
                ? Task.Run(() => conversations.AppendMessageAsync(request.Owner, turn.Id, new NewMessage("user", turn.Message, request.CreatedAt, request.Id, null, null)))
                : Task.FromResult(true);

            var ending = await runner.RunAsync(request);
            request.End(ending);
            await settlement.SettleAsync(request, limit, userTurn);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Settling is bookkeeping: a failure there is logged, and the holders still hear how the request ended.
            LogSettleFailed(exception, request.Id);
            if (request.EndedAt is null)
            {
                request.End(GenerationRunner.InternalError(request));
            }
        }
        finally
        {
            request.Publish();
            if (Interlocked.Decrement(ref _running) == 0)
            {
                Volatile.Read(ref _drained)?.TrySetResult();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId} ended, but settling its tokens, log entry or conversation failed")]
    private partial void LogSettleFailed(Exception exception, string requestId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: waiting for {Running} running requests to end")]
    private partial void LogWaiting(int running);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopped before {Running} running requests had ended; their log entries may be missing")]
    private partial void LogGaveUp(int running);
}
