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
/// samples and at least <see cref="HealthOptions.FailureRatePercent"/> % of them are failures, or at once after
/// <see cref="HealthOptions.FailuresBeforeUnhealthy"/> failures in a row (a dead backend fails everything quickly,
/// before the window fills), or when a probe fails. After <see cref="HealthOptions.CooldownSeconds"/> it half-opens:
/// one trial request goes through, and its success closes the circuit while its failure opens it again. A
/// successful probe closes it whatever its state.
/// </summary>
/// <remarks>
/// <para>
/// Each sample is one request on this backend, not one attempt: the caller reports a request once per backend
/// (see <see cref="Requests.GenerationRunner"/>). Thread-safe; the returned change is for the caller to apply.
/// </para>
/// <para>
/// A backend is shared, so one caller must not be able to take it out of service for everyone. A failure is
/// either about the backend — no answer at all (refused or reset connection, DNS, TLS, connect timeout), which
/// every request would meet — and is recorded with no owner, or it may be about the request — an error status, a
/// stall, a broken stream, which a request can provoke (options that fail a model load, a prompt that crashes a
/// runner) — and is recorded with the request's owner. The owner's failures then count as one: in the window, all
/// of one owner's failures are a single failed sample (so a caller who fails fifty requests neither outweighs
/// nor dilutes the others), and in a row, one owner failing again adds nothing. And neither rule opens the circuit
/// on one owner's word: the failures it counts must include one about the backend or come from two owners at
/// least. A caller alone can therefore make only its own requests fail; taking a backend out needs the backend to
/// fail a request any caller would have failed, or two callers to see it fail.
/// </para>
/// </remarks>
internal sealed class BackendCircuit(HealthOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Queue<(DateTimeOffset At, bool Failed, string? Owner)> _window = new();
    private readonly TimeSpan _windowLength = TimeSpan.FromSeconds(options.WindowSeconds);
    private readonly TimeSpan _cooldown = TimeSpan.FromSeconds(options.CooldownSeconds);

    // The window's failures by owner: each owner's count once, however many the window holds.
    private readonly Dictionary<string, int> _ownedFailures = new(StringComparer.Ordinal);

    // The owners among the failures since the last success: each counts once in a row too.
    private readonly HashSet<string> _ownersInARow = new(StringComparer.Ordinal);
    private int _successes;
    private int _backendFailures;
    // The owners whose requests failed as trials since the circuit half-opened.
    private readonly HashSet<string> _trialFailures = new(StringComparer.Ordinal);
    private int _backendFailuresInARow;
    private DateTimeOffset _openedAt;

    public CircuitState State { get; private set; } = CircuitState.Closed;

    /// <summary>How long an open circuit rests before its trial.</summary>
    public TimeSpan Cooldown => _cooldown;

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

    /// <summary>The samples and the failed ones in the window now (each owner's failures as one), for the operator's log.</summary>
    public (int Requests, int Failed) Window
    {
        get
        {
            lock (_lock)
            {
                Expire(time.GetUtcNow());
                int failed = _backendFailures + _ownedFailures.Count;
                return (_successes + failed, failed);
            }
        }
    }

    /// <summary>
    /// One request's outcome on this backend. <paramref name="owner"/> is who sent a request whose failure it may
    /// have caused itself; null for a success or for a failure about the backend (see the remarks on the class).
    /// </summary>
    public CircuitChange Record(bool failed, string? owner = null)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            switch (State)
            {
                case CircuitState.HalfOpen:
                    // Whatever reports first after the cool-down is the trial's verdict (a request that was already
                    // running when the circuit opened speaks for the backend just as well). A success closes it; a
                    // failure about the backend opens it again. A failure that may be the request's own proves
                    // nothing alone — else one caller whose requests crash the runner, put back at the head of the
                    // queue, would be every trial and keep the backend out for everyone — so the next request tries,
                    // until a second owner fails too.
                    if (!failed)
                    {
                        return Close();
                    }

                    if (owner is null || (_trialFailures.Add(owner) && _trialFailures.Count >= 2))
                    {
                        return Open(now);
                    }

                    return CircuitChange.HalfOpened;

                case CircuitState.Open:
                    // Requests that were running when it opened: the cool-down and the trial decide, not they.
                    return CircuitChange.None;
            }

            Expire(now);
            _window.Enqueue((now, failed, failed ? owner : null));
            if (!failed)
            {
                _successes++;
                _backendFailuresInARow = 0;
                _ownersInARow.Clear();
                return CircuitChange.None;
            }

            if (owner is null)
            {
                _backendFailures++;
                _backendFailuresInARow++;
            }
            else
            {
                _ownedFailures[owner] = _ownedFailures.GetValueOrDefault(owner) + 1;
                _ownersInARow.Add(owner);
            }

            int failures = _backendFailures + _ownedFailures.Count;
            int samples = _successes + failures;
            bool rateTooHigh = samples >= options.MinimumRequests &&
                failures * 100.0 >= options.FailureRatePercent * samples &&
                Corroborated(_backendFailures, _ownedFailures.Count);
            bool tooManyInARow = _backendFailuresInARow + _ownersInARow.Count >= options.FailuresBeforeUnhealthy &&
                Corroborated(_backendFailuresInARow, _ownersInARow.Count);
            return rateTooHigh || tooManyInARow ? Open(now) : CircuitChange.None;
        }
    }

    /// <summary>
    /// The trial ended without reporting a verdict, its request stopped first. If the backend had begun to answer
    /// (<paramref name="answered"/>) it is alive, which closes the circuit; if not, the trial proved nothing and
    /// another request may try (<see cref="CircuitChange.HalfOpened"/>). Nothing when no verdict is awaited.
    /// </summary>
    public CircuitChange TrialAbandoned(bool answered, DateTimeOffset trialStartedAt)
    {
        lock (_lock)
        {
            // A trial of an earlier rest, ended after the circuit reopened and half-opened again, says nothing of
            // the trial now under way: acting on it would let a second one through.
            if (State != CircuitState.HalfOpen || trialStartedAt < HalfOpenedAt)
            {
                return CircuitChange.None;
            }

            return answered ? Close() : CircuitChange.HalfOpened;
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

            // An open circuit keeps its cool-down: probes failing in a row must not keep postponing the trial. A
            // probe asks for nothing a caller chose, so its failure is about the backend alone.
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
            HalfOpenedAt = time.GetUtcNow();
            return CircuitChange.HalfOpened;
        }
    }

    /// <summary>When the circuit last half-opened: a trial that started before it belongs to an earlier rest.</summary>
    public DateTimeOffset HalfOpenedAt { get; private set; } = DateTimeOffset.MinValue;

    /// <summary>Failures about the backend speak for everyone; failures caused by requests need two owners.</summary>
    private static bool Corroborated(int backendFailures, int owners) => backendFailures > 0 || owners >= 2;

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
        _trialFailures.Clear();
        _ownedFailures.Clear();
        _successes = 0;
        _backendFailures = 0;
        _ownersInARow.Clear();
        _backendFailuresInARow = 0;
    }

    private void Expire(DateTimeOffset now)
    {
        while (_window.TryPeek(out var oldest) && now - oldest.At >= _windowLength)
        {
            _window.Dequeue();
            if (!oldest.Failed)
            {
                _successes--;
            }
            else if (oldest.Owner is null)
            {
                _backendFailures--;
            }
            else if (--_ownedFailures[oldest.Owner] == 0)
            {
                _ownedFailures.Remove(oldest.Owner);
            }
        }
    }
}
