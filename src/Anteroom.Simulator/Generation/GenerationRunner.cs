using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Generation;

/// <summary>
/// The life of one generation: wait for a slot, evaluate the prompt, stream tokens at the configured pace, inject
/// the planned fault, and end exactly once, freeing the slot, whatever happens.
/// </summary>
internal static class GenerationRunner
{
    public static async Task RunAsync(Simulation simulation, HttpContext http, GenerationRequest request, IGenerationWriter writer)
    {
        var arrived = simulation.Time.GetTimestamp();
        var clientGone = http.RequestAborted;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(clientGone, simulation.Stopping);
        var cancellationToken = linked.Token;

        SlotLease? lease;
        try
        {
            lease = await simulation.Slots.AcquireAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            EndIfStopping(simulation, http);
            return;
        }

        if (lease is null)
        {
            await writer.BusyAsync();
            return;
        }

        var outcome = GenerationOutcome.Failed;
        var halfClosed = false;
        try
        {
            (outcome, halfClosed) = await GenerateAsync(simulation, http, request, writer, arrived, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = GenerationOutcome.Cancelled;
        }
        catch (IOException) when (clientGone.IsCancellationRequested)
        {
            outcome = GenerationOutcome.Cancelled;
        }
        finally
        {
            lease.Finish(outcome);
        }

        if (halfClosed)
        {
            // Kestrel may close the socket only once the client has read to the end and hung up: closing it
            // sooner would reset the connection and lose the bytes the half-close was meant to deliver.
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            http.Abort();
        }
        else if (outcome == GenerationOutcome.Cancelled)
        {
            EndIfStopping(simulation, http);
        }
    }

    /// <returns>The outcome, and whether the connection was half-closed and must stay open until the client leaves.</returns>
    private static async Task<(GenerationOutcome Outcome, bool HalfClosed)> GenerateAsync(
        Simulation simulation,
        HttpContext http,
        GenerationRequest request,
        IGenerationWriter writer,
        long arrived,
        CancellationToken cancellationToken)
    {
        var time = simulation.Time;
        var timing = simulation.Timing;
        var plan = request.Plan;
        var clientGone = http.RequestAborted;

        await simulation.HoldGate.PassAsync(cancellationToken);
        var clock = new TokenClock(time);
        await clock.WaitAsync(timing.UntilFirstToken(request.PromptTokens, simulation.Slots.Active), cancellationToken);
        // Hold() called while the prompt was being evaluated still keeps the first token back.
        await simulation.HoldGate.PassAsync(cancellationToken);

        if (plan.Fault == SimulatedFault.FailBeforeFirstToken)
        {
            await writer.FailAsync("simulated failure before the first token", cancellationToken);
            return (GenerationOutcome.Failed, false);
        }

        var words = new WordSource(plan.TextSeed);
        var firstTokenAt = 0L;
        for (var sent = 0; sent < plan.OutputTokens;)
        {
            if (sent > 0)
                await clock.WaitAsync(timing.BetweenTokens(simulation.Slots.Active), cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();

            simulation.Stats.TokenProduced(afterDisconnect: clientGone.IsCancellationRequested);
            if (sent == 0)
                firstTokenAt = time.GetTimestamp();
            await writer.TokenAsync(Padded(words.Next(), simulation.Options.TokenChars), cancellationToken);
            sent++;

            if (sent == plan.FaultAfterToken)
                return await InjectFaultAsync(simulation, http, plan.Fault, writer, cancellationToken);
        }

        var finished = time.GetTimestamp();
        var promptEvaluation = TimeSpan.FromTicks(Math.Min(
            timing.PromptEvaluation(request.PromptTokens).Ticks,
            time.GetElapsedTime(clock.Start, firstTokenAt).Ticks));
        var result = new GenerationResult(
            request.PromptTokens,
            plan.OutputTokens,
            plan.FinishReason,
            Total: time.GetElapsedTime(arrived, finished),
            Load: time.GetElapsedTime(arrived, clock.Start),
            PromptEvaluation: promptEvaluation,
            Evaluation: time.GetElapsedTime(clock.Start, finished) - promptEvaluation,
            plan.TextSeed);
        await writer.DoneAsync(result, cancellationToken);
        return (GenerationOutcome.Completed, false);
    }

    private static async Task<(GenerationOutcome Outcome, bool HalfClosed)> InjectFaultAsync(
        Simulation simulation,
        HttpContext http,
        SimulatedFault fault,
        IGenerationWriter writer,
        CancellationToken cancellationToken)
    {
        switch (fault)
        {
            case SimulatedFault.FailMidStream:
                await writer.FailAsync("simulated failure in the middle of the stream", cancellationToken);
                return (GenerationOutcome.Failed, false);
            case SimulatedFault.Disconnect:
                // The server dies while computing the next token. With disconnects injected, a completed flush means
                // the bytes are with the operating system (see StartAsync), so TCP delivers every token sent so far
                // ahead of the connection's end.
                await Task.Delay(simulation.Timing.BetweenTokens(simulation.Slots.Active), simulation.Time, cancellationToken);
                if (HalfClose.TryShutDownSending(http))
                    return (GenerationOutcome.Failed, true);
                http.Abort();
                return (GenerationOutcome.Failed, false);
            case SimulatedFault.Stall:
                // A hung runner: the slot stays taken and nothing more is sent until the client gives up.
                simulation.Stats.StallBegan();
                try
                {
                    await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
                finally
                {
                    simulation.Stats.StallEnded();
                }

                return (GenerationOutcome.Cancelled, false);
            default:
                throw new InvalidOperationException($"Fault {fault} cannot happen mid-stream.");
        }
    }

    /// <summary>The word repeated up to <paramref name="chars"/> characters (see <see cref="SimulatorOptions.TokenChars"/>).</summary>
    private static string Padded(string word, int chars)
    {
        if (word.Length >= chars)
            return word;
        var text = new System.Text.StringBuilder(chars + word.Length);
        while (text.Length < chars)
            text.Append(word);
        return text.ToString();
    }

    /// <summary>A stream cut by the server's shutdown must not look like a clean end to the client.</summary>
    private static void EndIfStopping(Simulation simulation, HttpContext http)
    {
        if (simulation.Stopping.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested)
            http.Abort();
    }
}
