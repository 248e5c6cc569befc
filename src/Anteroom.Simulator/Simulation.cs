using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Models;

namespace Anteroom.Simulator;

/// <summary>The state one simulated server shares across its requests.</summary>
internal sealed class Simulation : IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    public Simulation(SimulatorOptions options, TimeProvider time)
    {
        Options = options;
        Time = time;
        Stats = new StatsBoard();
        // Continuous batching runs every request at once; only the per-token cost tells it is busy.
        Slots = options.Batching
            ? new SlotQueue(int.MaxValue, 0, Stats)
            : new SlotQueue(options.Parallel, options.MaxQueue, Stats);
        HoldGate = new HoldGate();
        Planner = new GenerationPlanner(options);
        Timing = new GenerationTiming(options);
        Catalog = new ModelCatalog(options.Models);
    }

    public SimulatorOptions Options { get; }

    public TimeProvider Time { get; }

    public StatsBoard Stats { get; }

    public SlotQueue Slots { get; }

    public HoldGate HoldGate { get; }

    public GenerationPlanner Planner { get; }

    public GenerationTiming Timing { get; }

    public ModelCatalog Catalog { get; }

    /// <summary>Fires when the server shuts down, ending every waiting, held and stalled generation.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public void Stop() => _stopping.Cancel();

    public void Dispose() => _stopping.Dispose();
}
