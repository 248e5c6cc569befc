using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>
/// The clients of the configured model servers and their health: each backend has a circuit
/// (<see cref="BackendCircuit"/>) judged by its share of failed requests, by failed requests in a row and by
/// probes, and the scheduler is told when it opens (no new tickets), half-opens (one trial ticket) or closes.
/// </summary>
internal sealed partial class BackendPool : Requests.IBackendPool, IDisposable
{
    private readonly Dictionary<string, Member> _members = new(StringComparer.Ordinal);
    private readonly HttpClient _http;
    private readonly IRequestQueue _queue;
    private readonly TimeProvider _time;
    private readonly ILogger<BackendPool> _log;
    private readonly TimeSpan _noBackendRetryAfter;

    public BackendPool(IOptions<AnteroomOptions> options, IRequestQueue queue, TimeProvider time, ILogger<BackendPool> log)
    {
        _queue = queue;
        _time = time;
        _log = log;
        _noBackendRetryAfter = NoBackendRetryAfter(options.Value.Health);
        // One handler for every backend: pooled connections, no overall timeout (streams last minutes); stalls
        // are caught per chunk by the clients' idle timeout instead.
        _http = new HttpClient(new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            MaxConnectionsPerServer = int.MaxValue,
            // A backend's answer is relayed as it is: a redirect is not followed (it would send the client's body
            // to wherever the backend points), and no cookies are kept between users' requests.
            AllowAutoRedirect = false,
            UseCookies = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        var clientOptions = new ModelServerClientOptions
        {
            IdleTimeout = TimeSpan.FromSeconds(options.Value.Health.IdleTimeoutSeconds),
            TimeProvider = time,
            MaxAnswerBytes = options.Value.Stream.MaxAnswerBytes,
        };
        foreach (var backend in options.Value.Backends)
        {
            var protocol = backend.ParsedProtocol();
            var client = ModelServerClient.Create(protocol, _http, new Uri(backend.Url!), clientOptions);
            _members[backend.Name!] = new Member(this, backend.Name!, protocol, client, new BackendCircuit(options.Value.Health, time), backend.Models);
        }
    }

    public IModelServerClient Client(string backend) => _members[backend].Client;

    public BackendProtocol Protocol(string backend) => _members[backend].Protocol;

    /// <summary>The backend's circuit state now.</summary>
    public CircuitState Circuit(string backend) => _members[backend].Circuit.State;

    /// <summary>The samples and failures the backend's circuit holds in its window now.</summary>
    public (int Requests, int Failed) CircuitWindow(string backend) => _members[backend].Circuit.Window;

    /// <summary>
    /// The longest a request turned away for want of a healthy backend should wait before trying again, when no
    /// circuit knows better: an open circuit lets a trial through at most a cool-down after it opened (and after
    /// each failed trial), and a probe comes at most a probe interval away.
    /// </summary>
    public static TimeSpan NoBackendRetryAfter(HealthOptions health) =>
        TimeSpan.FromSeconds(Math.Min(health.CooldownSeconds, health.ProbeSeconds));

    /// <summary>
    /// How long a request for <paramref name="model"/> turned away for want of a healthy backend should wait: until
    /// the earliest trial among its backends' open circuits is due, else <see cref="NoBackendRetryAfter(HealthOptions)"/>.
    /// </summary>
    public TimeSpan RetryAfterNoHealthyBackend(string model)
    {
        var now = _time.GetUtcNow();
        TimeSpan? earliest = null;
        foreach (var member in _members.Values)
        {
            if (member.Models.Contains(model, StringComparer.Ordinal) && member.Circuit.TrialDueAt is { } due)
            {
                var wait = Max(due - now, TimeSpan.Zero);
                earliest = earliest is { } known && known < wait ? known : wait;
            }
        }

        return earliest ?? _noBackendRetryAfter;
    }

    /// <summary>
    /// A request's attempt on the lease's backend succeeded. <paramref name="sampled"/> holds the backends the
    /// request has already been counted on: a request is one sample per backend, however many attempts it made
    /// there — except on a trial slot, whose outcome is always the backend's verdict.
    /// </summary>
    public void ReportSuccess(SlotLease lease, ISet<string> sampled)
    {
        if (sampled.Add(lease.Backend) || lease.IsTrial)
        {
            Apply(_members[lease.Backend], lease, static circuit => circuit.Record(failed: false));
        }
    }

    /// <summary>
    /// A request's attempt on the lease's backend failed. Only failures that say something about the backend count,
    /// a request counts once per backend (see <see cref="ReportSuccess"/>), and a failure the request may have
    /// caused itself is its owner's (see <see cref="BackendCircuit"/>).
    /// </summary>
    public void ReportFailure(SlotLease lease, BackendError error, ISet<string> sampled)
    {
        var member = _members[lease.Backend];
        // A model's own error, a full backend queue, a refusal of the request or an answer too large to hold say
        // nothing about the backend's health in general — but they are answers, so a trial that gets one has shown
        // the backend is alive.
        if (error.Failure is BackendFailure.StreamError or BackendFailure.Busy or BackendFailure.TooLarge ||
            (error.Failure == BackendFailure.ErrorStatus && error.StatusCode is < 500))
        {
            if (lease.IsTrial)
            {
                Apply(member, lease, static circuit => circuit.Record(failed: false));
            }

            return;
        }

        if (!sampled.Add(lease.Backend) && !lease.IsTrial)
        {
            // A retry of a request already counted here: the same evidence again, not a new sample.
            return;
        }

        // No answer at all is met by every request alike; anything after the connection was made may be the
        // request's own doing.
        string? owner = error.Failure == BackendFailure.Unreachable ? null : lease.Ticket.Owner;
        Apply(member, lease, circuit =>
        {
            var change = circuit.Record(failed: true, owner);
            var (requests, failed) = circuit.Window;
            LogBackendFailure(lease.Backend, error.Failure, error.Message, failed, requests);
            return change;
        });
    }

    /// <summary>
    /// An attempt on the lease ended, whatever became of it. A trial that reported no verdict because its request
    /// was stopped first is judged by whether a token had come (the backend is alive); with none it proved nothing,
    /// so the backend gets another trial rather than staying shut until a probe.
    /// </summary>
    public void EndAttempt(SlotLease lease)
    {
        if (!lease.IsTrial)
        {
            return;
        }

        var member = _members[lease.Backend];
        Apply(member, null, circuit => ReferenceEquals(member.DecidedTrial, lease) ? CircuitChange.None : circuit.TrialAbandoned(answered: lease.FirstTokenAt is not null, lease.StartedAt));
    }

    /// <summary>Asks every backend for its models: an answer closes its circuit, none opens it.</summary>
    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_members.Values.Select(async member =>
        {
            var result = await member.Client.ListModelsAsync(cancellationToken);
            Apply(member, null, circuit => circuit.Probed(result.IsSuccess));
        }));
    }

    public void Dispose()
    {
        foreach (var member in _members.Values)
        {
            member.Dispose();
        }

        _http.Dispose();
    }

    /// <summary>
    /// Takes a step of the backend's circuit and tells the scheduler what it changed, both under the member's lock:
    /// two changes of one backend reach the scheduler in the order they happened (the scheduler never calls back
    /// into the pool, so the lock order is always member, then scheduler). <paramref name="lease"/> is the attempt
    /// the step reports on, if any: a trial's report is its verdict.
    /// </summary>
    private void Apply(Member member, SlotLease? lease, Func<BackendCircuit, CircuitChange> step)
    {
        var told = ValueTask.CompletedTask;
        lock (member.Gate)
        {
            if (lease is { IsTrial: true })
            {
                member.DecidedTrial = lease;
            }

            switch (step(member.Circuit))
            {
                case CircuitChange.Opened:
                    LogBackendUnhealthy(member.Name);
                    told = _queue.SetBackendHealthAsync(member.Name, false);
                    if (member.Circuit.TrialDueAt is { } due)
                    {
                        member.ArmCooldown(Max(due - _time.GetUtcNow(), TimeSpan.Zero));
                    }

                    break;

                case CircuitChange.HalfOpened:
                    LogBackendOnTrial(member.Name);
                    told = _queue.AllowBackendTrialAsync(member.Name);
                    break;

                case CircuitChange.Closed:
                    LogBackendRecovered(member.Name);
                    told = _queue.SetBackendHealthAsync(member.Name, true);
                    break;
            }
        }

        // Told under the member's lock, so a queue sees one backend's changes in the order they happened; the
        // in-process queue has taken the change when the call returns, a remote one is awaited here, outside it.
        if (!told.IsCompletedSuccessfully)
        {
            _ = ObserveAsync(told.AsTask(), member.Name);
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Backend {Backend} failed a request ({Failure}: {Message}); {Failed} of {Requests} requests in the window failed")]
    private partial void LogBackendFailure(string backend, BackendFailure failure, string message, int failed, int requests);

    [LoggerMessage(Level = LogLevel.Error, Message = "Backend {Backend} is unhealthy; it takes no new requests until a trial request or a probe succeeds")]
    private partial void LogBackendUnhealthy(string backend);

    [LoggerMessage(Level = LogLevel.Information, Message = "Backend {Backend} has rested; one trial request may go through")]
    private partial void LogBackendOnTrial(string backend);

    private async Task ObserveAsync(Task told, string backend)
    {
        try
        {
            await told;
        }
        catch (Exception exception)
        {
            LogQueueNotTold(exception, backend);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "The request queue was not told of backend {Backend}'s health")]
    private partial void LogQueueNotTold(Exception exception, string backend);

    [LoggerMessage(Level = LogLevel.Information, Message = "Backend {Backend} answers again and takes requests")]
    private partial void LogBackendRecovered(string backend);

    private sealed class Member : IDisposable
    {
        private readonly ITimer _cooldown;

        public Member(BackendPool pool, string name, BackendProtocol protocol, IModelServerClient client, BackendCircuit circuit, IReadOnlyList<string> models)
        {
            Name = name;
            Models = models;
            Protocol = protocol;
            Client = client;
            Circuit = circuit;
            _cooldown = pool._time.CreateTimer(
                static state =>
                {
                    var (pool, member) = ((BackendPool, Member))state!;
                    pool.Apply(member, null, circuit =>
                    {
                        var change = circuit.CoolDown();
                        if (change == CircuitChange.None && circuit.TrialDueAt is { } due)
                        {
                            // The timer counts whole milliseconds of another clock, so it may fire a little before
                            // the trial is due; without waiting out the rest, the trial would never come.
                            member.ArmCooldown(Max(due - pool._time.GetUtcNow(), TimeSpan.FromMilliseconds(1)));
                        }

                        return change;
                    });
                },
                (pool, this),
                Timeout.InfiniteTimeSpan,
                Timeout.InfiniteTimeSpan);
        }

        public Lock Gate { get; } = new();

        public string Name { get; }

        public BackendProtocol Protocol { get; }

        public IModelServerClient Client { get; }

        public BackendCircuit Circuit { get; }

        public IReadOnlyList<string> Models { get; }

        /// <summary>The latest trial lease that reported a verdict; guarded by <see cref="Gate"/>.</summary>
        public SlotLease? DecidedTrial { get; set; }

        public void ArmCooldown(TimeSpan dueIn) => _cooldown.Change(dueIn, Timeout.InfiniteTimeSpan);

        public void Dispose() => _cooldown.Dispose();
    }
}

/// <summary>Probes the backends at start and then periodically.</summary>
internal sealed class BackendHealthProbe(BackendPool pool, IOptions<AnteroomOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.Health.ProbeSeconds), time);
        do
        {
            await pool.ProbeAllAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>
/// Forgets ended requests once their replay window has passed, and callers whose rate limits and fair-share
/// accounts hold nothing.
/// </summary>
internal sealed partial class RequestSweeper(
    Requests.IRequestRegistry registry, Limits.IRateLimiter rates, IRequestQueue queue, IOptions<AnteroomOptions> options, TimeProvider time,
    ILogger<RequestSweeper> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retain = TimeSpan.FromSeconds(options.Value.Stream.RetainSeconds);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Clamp(retain.TotalSeconds / 4, 1, 60)), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await registry.SweepAsync(time.GetUtcNow() - retain);
                await rates.SweepAsync();
                await queue.ForgetIdleUsersAsync(stoppingToken);
            }
            catch (Exception exception) when (Shared.SharedState.ExplainsFailure(exception))
            {
                // Redis mode, with Redis out of reach: the next tick sweeps what this one could not. Letting it
                // escape would stop the host, so an outage longer than a tick would take the replica down for good
                // instead of its recovering by itself when Redis returns.
                LogSweepSkipped(exception.Message);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweep skipped: {Reason}")]
    private partial void LogSweepSkipped(string reason);
}
