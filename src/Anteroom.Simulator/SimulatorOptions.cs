namespace Anteroom.Simulator;

/// <summary>
/// How the simulated model server behaves: which models it serves, how many generations run at once, how fast
/// tokens come and how often things go wrong. Every random choice derives from <see cref="Seed"/>, so the same
/// options and the same order of requests give the same streams.
/// </summary>
public sealed class SimulatorOptions
{
    /// <summary>Model names the server answers to, e.g. <c>llama3.1:8b</c>. At least one.</summary>
    public IList<string> Models { get; set; } = ["llama3.1:8b"];

    /// <summary>Generations that run at once, shared by all models (Ollama's <c>OLLAMA_NUM_PARALLEL</c>). Ignored when <see cref="Batching"/> is on.</summary>
    public int Parallel { get; set; } = 1;

    /// <summary>Requests that may wait for a slot; one more is refused with Ollama's 503 (Ollama's <c>OLLAMA_MAX_QUEUE</c>).</summary>
    public int MaxQueue { get; set; } = 512;

    /// <summary>
    /// Continuous batching as vLLM does it: every request runs at once, and the time per token grows with the
    /// number of running generations, gently up to <see cref="BatchKnee"/> and steeply after it.
    /// </summary>
    public bool Batching { get; set; }

    /// <summary>The number of running generations where the batching slowdown turns steep.</summary>
    public int BatchKnee { get; set; } = 16;

    /// <summary>Milliseconds from getting a slot to the first token for a warm model, before prompt evaluation is added.</summary>
    public double TtftMs { get; set; } = 40;

    /// <summary>Tokens per second of one stream; prompt evaluation runs fifty times faster.</summary>
    public double TokensPerSecond { get; set; } = 80;

    /// <summary>
    /// Mean output length in tokens. Each generation draws its length uniformly within ±50% of it, then caps it by
    /// the request's <c>max_tokens</c> or <c>options.num_predict</c> (finish reason <c>length</c>).
    /// </summary>
    public int OutputTokens { get; set; } = 64;

    /// <summary>Share of generations (0 to 1) that fail with HTTP 500 before sending any byte.</summary>
    public double FailBeforeFirstTokenRate { get; set; }

    /// <summary>Share of generations (0 to 1) that end with the protocol's in-stream error after some tokens.</summary>
    public double FailMidStreamRate { get; set; }

    /// <summary>Share of generations (0 to 1) that stop sending after some tokens and hold the slot until the client leaves.</summary>
    public double StallRate { get; set; }

    /// <summary>Share of generations (0 to 1) whose connection is aborted after some tokens.</summary>
    public double DisconnectRate { get; set; }

    /// <summary>
    /// 0: faults are drawn at random with their rates. N: faults come in exact shares of every N generations, in
    /// order — with a rate of 0.3 before the first token and N = 10, generations 1–3, 11–13, … fail — so a test can
    /// count on a rate without depending on the draws.
    /// </summary>
    public int FaultCycle { get; set; }

    /// <summary>Seed of every random choice: output lengths, words, faults and identifiers.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>
    /// How many of the latest request bodies to keep for <see cref="SimulatedModelServer.ReceivedBodies"/>: a test
    /// that sees what the server was actually sent can tell what a backend would read. 0, the default, keeps none.
    /// </summary>
    public int RecordBodies { get; set; }

    /// <summary>
    /// The least characters of each token's text: a shorter word is repeated up to it. 0, the default, sends plain
    /// words. Long tokens let a test stream megabytes in a few thousand tokens, as a reader that falls behind meets it.
    /// </summary>
    public int TokenChars { get; set; }

    /// <summary>
    /// Reads command-line flags: <c>--models a,b --parallel N --max-queue M --batching --batch-knee K --ttft-ms X
    /// --tokens-per-second X --output-tokens N --fail-before-first-token R --fail-mid-stream R --stall R
    /// --disconnect R --fault-cycle N --seed N</c>, each value also accepted as <c>--flag=value</c>. <c>--urls</c> and its value are
    /// skipped, because the host reads them.
    /// </summary>
    /// <exception cref="ArgumentException">A flag is unknown, lacks its value, or its value is out of range; the message names the flag.</exception>
    public static SimulatorOptions Parse(IReadOnlyList<string> args) => SimulatorArguments.Parse(args);

    /// <summary>Checks every value and returns a copy, so a caller changing its options later cannot change a running server.</summary>
    internal SimulatorOptions ValidatedCopy()
    {
        var copy = new SimulatorOptions
        {
            Models = Models is null ? [] : [.. Models],
            Parallel = Parallel,
            MaxQueue = MaxQueue,
            Batching = Batching,
            BatchKnee = BatchKnee,
            TtftMs = TtftMs,
            TokensPerSecond = TokensPerSecond,
            OutputTokens = OutputTokens,
            FailBeforeFirstTokenRate = FailBeforeFirstTokenRate,
            FailMidStreamRate = FailMidStreamRate,
            StallRate = StallRate,
            DisconnectRate = DisconnectRate,
            FaultCycle = FaultCycle,
            Seed = Seed,
            RecordBodies = RecordBodies,
            TokenChars = TokenChars,
        };
        copy.Validate();
        return copy;
    }

    private void Validate()
    {
        if (Models.Count == 0 || Models.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("Models must name at least one model, and no name may be blank.", nameof(Models));
        Require(Parallel >= 1, nameof(Parallel), "at least 1");
        Require(MaxQueue >= 0, nameof(MaxQueue), "0 or more");
        Require(BatchKnee >= 1, nameof(BatchKnee), "at least 1");
        Require(double.IsFinite(TtftMs) && TtftMs >= 0, nameof(TtftMs), "a finite number of 0 or more");
        Require(double.IsFinite(TokensPerSecond) && TokensPerSecond > 0, nameof(TokensPerSecond), "a finite number above 0");
        Require(OutputTokens >= 1, nameof(OutputTokens), "at least 1");
        Require(RecordBodies >= 0, nameof(RecordBodies), "0 or more");
        Require(TokenChars is >= 0 and <= 1_000_000, nameof(TokenChars), "between 0 and 1000000");
        Require(SimulatorArguments.IsRate(FailBeforeFirstTokenRate), nameof(FailBeforeFirstTokenRate), "between 0 and 1");
        Require(SimulatorArguments.IsRate(FailMidStreamRate), nameof(FailMidStreamRate), "between 0 and 1");
        Require(SimulatorArguments.IsRate(StallRate), nameof(StallRate), "between 0 and 1");
        Require(SimulatorArguments.IsRate(DisconnectRate), nameof(DisconnectRate), "between 0 and 1");
        Require(FaultCycle >= 0, nameof(FaultCycle), "0 or more");
        if (FaultRateSum > 1 + 1e-9)
            throw new ArgumentException("The four fault rates must add up to at most 1, because a generation meets at most one fault.");
    }

    internal double FaultRateSum => FailBeforeFirstTokenRate + FailMidStreamRate + StallRate + DisconnectRate;

    private static void Require(bool ok, string name, string expectation)
    {
        if (!ok)
            throw new ArgumentException($"{name} must be {expectation}.", name);
    }
}
