using Anteroom.Simulator;

namespace Anteroom.Gateway;

/// <summary>The simulated model server started in-process when no backend is configured.</summary>
internal sealed class EmbeddedSimulator(SimulatedModelServer server) : IAsyncDisposable
{
    public const string BackendName = "simulator";

    public SimulatedModelServer Server { get; } = server;

    /// <summary>Demo timing: slow enough that a few browser tabs see the queue move.</summary>
    public static SimulatorOptions DemoOptions() => new()
    {
        Models = ["llama3.1:8b", "qwen2.5:7b"],
        Parallel = 1,
        TtftMs = 300,
        TokensPerSecond = 25,
        OutputTokens = 120,
    };

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
