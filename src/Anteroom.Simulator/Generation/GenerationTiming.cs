namespace Anteroom.Simulator.Generation;

/// <summary>The delays of one generation, from the options and the number of generations running.</summary>
internal sealed class GenerationTiming(SimulatorOptions options)
{
    // Prompt evaluation is batched over the whole prompt, so it runs much faster than generation; tying it to the
    // generation speed keeps a fast simulator fast (a benchmark's near-zero-delay backend stays near zero).
    private const double PromptSpeedup = 50;

    public TimeSpan UntilFirstToken(int promptTokens, int active) =>
        Milliseconds((options.TtftMs + PromptEvaluationMs(promptTokens)) * Slowdown(active));

    public TimeSpan BetweenTokens(int active) => Milliseconds(1000 / options.TokensPerSecond * Slowdown(active));

    public TimeSpan PromptEvaluation(int promptTokens) => Milliseconds(PromptEvaluationMs(promptTokens));

    /// <summary>Embeddings are one short forward pass: a fixed few milliseconds, none on a zero-delay simulator.</summary>
    public TimeSpan Embedding => Milliseconds(Math.Min(options.TtftMs, 5));

    private double PromptEvaluationMs(int promptTokens) => promptTokens * 1000 / (options.TokensPerSecond * PromptSpeedup);

    private double Slowdown(int active) => options.Batching ? BatchingCurve.Slowdown(active, options.BatchKnee) : 1;

    private static TimeSpan Milliseconds(double milliseconds) =>
        TimeSpan.FromTicks((long)Math.Round(Math.Min(milliseconds, TimeSpan.MaxValue.TotalMilliseconds / 2) * TimeSpan.TicksPerMillisecond));
}
