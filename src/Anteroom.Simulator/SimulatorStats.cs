namespace Anteroom.Simulator;

/// <summary>
/// A snapshot of what the simulated server has done with generation requests (chat, generate and completions;
/// embeddings are not counted). Every admitted generation ends exactly once, as completed, cancelled or failed.
/// </summary>
public sealed class SimulatorStats
{
    /// <summary>Generations holding a slot now, including those paused by <see cref="SimulatedModelServer.Hold"/>.</summary>
    public int Active { get; init; }

    /// <summary>Generations waiting for a slot now.</summary>
    public int Queued { get; init; }

    /// <summary>Generations that delivered their final chunk.</summary>
    public int Completed { get; init; }

    /// <summary>Generations whose client left (while waiting or running), or that the server's shutdown ended.</summary>
    public int Cancelled { get; init; }

    /// <summary>Generations ended by an injected fault: an error before or during the stream, or an aborted connection.</summary>
    public int Failed { get; init; }

    /// <summary>Requests refused because the queue was full.</summary>
    public int Rejected { get; init; }

    /// <summary>The most generations ever active at once.</summary>
    public int PeakActive { get; init; }

    /// <summary>Tokens produced by all generations.</summary>
    public long TokensGenerated { get; init; }

    /// <summary>Tokens produced after the client's disconnect had been signalled; stays 0 when cancellation works.</summary>
    public long TokensAfterDisconnect { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"active {Active}, queued {Queued}, completed {Completed}, cancelled {Cancelled}, failed {Failed}, rejected {Rejected}, " +
        $"peak active {PeakActive}, tokens {TokensGenerated}, tokens after disconnect {TokensAfterDisconnect}";
}
