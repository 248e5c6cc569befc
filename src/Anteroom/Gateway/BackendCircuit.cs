using Anteroom.Configuration;

namespace Anteroom.Gateway;

/// <summary>Whether a backend takes requests: all of them, none, or one trial.</summary>
internal enum CircuitState
{
    /// <summary>Healthy: it takes every request its slots allow.</summary>
    Closed,

    /// <summary>Unhealthy: it takes nothing until its cool-down has passed or a probe succeeds.</summary>
    Open,

    /// <summary>Cooled down: one trial request may go through; its outcome closes or re-opens the circuit.</summary>
    HalfOpen,
}

/// <summary>What a sample, a probe or the passing of time did to a circuit.</summary>
internal enum CircuitChange
{
    None,
    Opened,
    HalfOpened,
    Closed,
}

/// <summary>
/// One backend's health, judged by the share of requests it failed over a sliding window rather than by failures
/// in a row: a backend that fails 30 % of first attempts still serves nearly every request once they are retried,
/// and must not turn arrivals away. It opens when the window holds at least <see cref="HealthOptions.MinimumRequests"/>
/// requests and at least <see cref="HealthOptions.FailureRatePercent"/> % of them failed, or at once after
/// <see cref="HealthOptions.FailuresBeforeUnhealthy"/> failed requests in a row (a dead backend fails everything
/// quickly, before the window fills), or when a probe fails. After <see cref="HealthOptions.CooldownSeconds"/> it
/// half-opens: one trial request goes through, and its success closes the circuit while its failure opens it again.
/// A successful probe closes it whatever its state.
/// </summary>
/// <remarks>
/// Each sample is one request on this backend, not one attempt: the caller reports a request once per backend
/// (see <see cref="Requests.GenerationRunner"/>). Thread-safe; the returned change is for the caller to apply.
/// </remarks>
internal sealed class BackendCircuit(HealthOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Queue<(DateTimeOffset At, bool Failed)> _window = new();
    private readonly TimeSpan _windowLength = TimeSpan.FromSeconds(options.WindowSeconds);
    private readonly TimeSpan _cooldown = TimeSpan.FromSeconds(options.CooldownSeconds);
    private int _failuresInWindow;
    private int _failuresInARow;
    private DateTimeOffset _openedAt;

    public CircuitState State { get; private set; } = CircuitState.Closed;

    /// <summary>When an open circuit may half-open; null unless open.</summary>
    public DateTimeOffset? TrialDueAt
    {
        get
        {
            lock (_lock)
            {
                return State == CircuitState.Open ? _openedAt + _cooldown : null;
            }
        }
    }

    /// <summary>The requests and the failed ones in the window now, for the operator's log.</summary>
    public (int Requests, int Failed) Window
    {
        get
        {
            lock (_lock)
            {
                Expire(time.GetUtcNow());
                return (_window.Count, _failuresInWindow);
            }
        }
    }

    /// <summary>One request's outcome on this backend.</summary>
    public CircuitChange Record(bool failed)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            switch (State)
            {
                case CircuitState.HalfOpen:
                    // Whatever reports first after the cool-down is the trial's verdict (a request that was already
                    // running when the circuit opened speaks for the backend just as well).
                    return failed ? Open(now) : Close();

                case CircuitState.Open:
                    // Requests that were running when it opened: the cool-down and the trial decide, not they.
                    return CircuitChange.None;
            }

            Expire(now);
            _window.Enqueue((now, failed));
            if (!failed)
            {
                _failuresInARow = 0;
                return CircuitChange.None;
            }

            _failuresInWindow++;
            _failuresInARow++;
            bool rateTooHigh = _window.Count >= options.MinimumRequests &&
                _failuresInWindow * 100.0 >= options.FailureRatePercent * _window.Count;
            return rateTooHigh || _failuresInARow >= options.FailuresBeforeUnhealthy ? Open(now) : CircuitChange.None;
        }
    }

    /// <summary>A probe's answer: a backend that does not list its models takes nothing; one that does takes everything.</summary>
    public CircuitChange Probed(bool succeeded)
    {
        lock (_lock)
        {
            if (succeeded)
            {
                return State == CircuitState.Closed ? CircuitChange.None : Close();
            }

            // An open circuit keeps its cool-down: probes failing in a row must not keep postponing the trial.
            return State == CircuitState.Open ? CircuitChange.None : Open(time.GetUtcNow());
        }
    }

    /// <summary>Half-opens an open circuit whose cool-down has passed.</summary>
    public CircuitChange CoolDown()
    {
        lock (_lock)
        {
            if (State != CircuitState.Open || time.GetUtcNow() < _openedAt + _cooldown)
            {
                return CircuitChange.None;
            }

            State = CircuitState.HalfOpen;
            return CircuitChange.HalfOpened;
        }
    }

    private CircuitChange Open(DateTimeOffset now)
    {
        State = CircuitState.Open;
        _openedAt = now;
        Reset();
        return CircuitChange.Opened;
    }

    private CircuitChange Close()
    {
        State = CircuitState.Closed;
        // A fresh start: the failures that opened it must not open it again at the next failure.
        Reset();
        return CircuitChange.Closed;
    }

    private void Reset()
    {
        _window.Clear();
        _failuresInWindow = 0;
        _failuresInARow = 0;
    }

    private void Expire(DateTimeOffset now)
    {
        while (_window.TryPeek(out var oldest) && now - oldest.At >= _windowLength)
        {
            _window.Dequeue();
            if (oldest.Failed)
            {
                _failuresInWindow--;
            }
        }
    }
}
