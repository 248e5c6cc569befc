namespace Anteroom.Simulator.Generation;

/// <summary>How an admitted generation ended; each ends exactly once.</summary>
internal enum GenerationOutcome
{
    Completed,
    Cancelled,
    Failed,
}
