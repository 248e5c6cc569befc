namespace Anteroom.Simulator.Generation;

/// <summary>A fault injected into one generation.</summary>
internal enum SimulatedFault
{
    None,
    FailBeforeFirstToken,
    FailMidStream,
    Stall,
    Disconnect,
}

/// <summary>Everything random about one generation, drawn up front from the seeded source.</summary>
/// <param name="OutputTokens">Tokens to produce.</param>
/// <param name="FinishReason"><c>stop</c>, or <c>length</c> when the request's limit cut the drawn length.</param>
/// <param name="Fault">The fault to inject, if any.</param>
/// <param name="FaultAfterToken">For faults after the stream began: the number of tokens sent before it.</param>
/// <param name="TextSeed">Seed of the words and token ids.</param>
/// <param name="Id">Identifier suffix for OpenAI's <c>chatcmpl-…</c> and <c>cmpl-…</c>.</param>
internal sealed record GenerationPlan(int OutputTokens, string FinishReason, SimulatedFault Fault, int FaultAfterToken, uint TextSeed, string Id);

/// <summary>Draws plans from one seeded source, so a run is repeatable for a given request order.</summary>
internal sealed class GenerationPlanner(SimulatorOptions options)
{
    private const string IdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private readonly Lock _lock = new();
    private readonly Random _random = new(options.Seed);
    private long _planned;

    public GenerationPlan Plan(int? maxTokens)
    {
        lock (_lock)
        {
            // Always draw the same values in the same order, so changing one option does not reshuffle the rest.
            var drawn = Math.Max(1, (int)Math.Round(options.OutputTokens * (0.5 + _random.NextDouble())));
            var faultRoll = _random.NextDouble();
            var faultPoint = _random.NextDouble();
            var textSeed = (uint)_random.Next() ^ ((uint)_random.Next() << 1);
            Span<char> id = stackalloc char[24];
            foreach (ref var c in id)
                c = IdAlphabet[_random.Next(IdAlphabet.Length)];

            var limited = maxTokens is > 0 && maxTokens.Value < drawn;
            var tokens = limited ? maxTokens!.Value : drawn;
            // In a fault cycle the roll is the generation's place in its cycle, spread evenly over [0, 1).
            long place = _planned++ % Math.Max(1, options.FaultCycle);
            var fault = Fault(options.FaultCycle > 0 ? (place + 0.5) / options.FaultCycle : faultRoll);
            // A fault "mid-stream" comes after at least one token and, when there is room, before the last one.
            var faultAfter = fault is SimulatedFault.None or SimulatedFault.FailBeforeFirstToken
                ? 0
                : 1 + (int)(faultPoint * Math.Max(1, tokens - 1));
            return new GenerationPlan(tokens, limited ? "length" : "stop", fault, faultAfter, textSeed, new string(id));
        }
    }

    private SimulatedFault Fault(double roll)
    {
        var threshold = options.FailBeforeFirstTokenRate;
        if (roll < threshold)
            return SimulatedFault.FailBeforeFirstToken;
        if (roll < (threshold += options.FailMidStreamRate))
            return SimulatedFault.FailMidStream;
        if (roll < (threshold += options.StallRate))
            return SimulatedFault.Stall;
        if (roll < threshold + options.DisconnectRate)
            return SimulatedFault.Disconnect;
        return SimulatedFault.None;
    }
}
