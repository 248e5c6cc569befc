namespace Anteroom.Simulator.Generation;

/// <summary>
/// Paces one generation against its start, not against the last wake-up, so timer lateness does not pile up
/// over a long stream. A generation that fell far behind (a slow reader) starts afresh rather than bursting.
/// </summary>
internal sealed class TokenClock(TimeProvider time)
{
    private readonly long _start = time.GetTimestamp();
    private TimeSpan _due;

    public long Start => _start;

    public async Task WaitAsync(TimeSpan step, CancellationToken cancellationToken)
    {
        var now = time.GetElapsedTime(_start);
        _due = now - _due > step ? now + step : _due + step;
        var delay = _due - now;
        if (delay > TimeSpan.Zero)
            await Task.Delay(delay, time, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
    }
}
