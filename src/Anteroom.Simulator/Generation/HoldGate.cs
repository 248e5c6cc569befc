namespace Anteroom.Simulator.Generation;

/// <summary>
/// While held, generations pause before their first token, so a test can keep slots busy for exactly as long as
/// it needs without racing the clock.
/// </summary>
internal sealed class HoldGate
{
    private readonly Lock _lock = new();
    private TaskCompletionSource? _held;

    public void Hold()
    {
        lock (_lock)
            _held ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void Release()
    {
        TaskCompletionSource? held;
        lock (_lock)
        {
            held = _held;
            _held = null;
        }

        held?.TrySetResult();
    }

    public Task PassAsync(CancellationToken cancellationToken)
    {
        Task? held;
        lock (_lock)
            held = _held?.Task;
        return held is null ? Task.CompletedTask : held.WaitAsync(cancellationToken);
    }
}
