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
internal sealed partial class BackendPool : IDisposable
{
    private readonly Dictionary<string, Member> _members = new(StringComparer.Ordinal);
    private readonly HttpClient _http;
    private readonly IRequestQueue _queue;
    private readonly TimeProvider _time;
    private readonly ILogger<BackendPool> _log;

    public BackendPool(IOptions<AnteroomOptions> options, IRequestQueue queue, TimeProvider time, ILogger<BackendPool> log)
    {
        _queue = queue;
        _time = time;
        _log = log;
        // One handler for every backend: pooled connections, no overall timeout (streams last minutes); stalls
        // are caught per chunk by the clients' idle timeout instead.
        _http = new HttpClient(new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            MaxConnectionsPerServer = int.MaxValue,
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
            _members[backend.Name!] = new Member(this, backend.Name!, protocol, client, new BackendCircuit(options.Value.Health, time));
        }
    }

    public IModelServerClient Client(string backend) => _members[backend].Client;

    public BackendProtocol Protocol(string backend) => _members[backend].Protocol;

    /// <summary>The backend's circuit state now.</summary>
    public CircuitState Circuit(string backend) => _members[backend].Circuit.State;

    /// <summary>
    /// A request's attempt on the backend succeeded. <paramref name="sampled"/> holds the backends the request has
    /// already been counted on: a request is one sample per backend, however many attempts it made there.
    /// </summary>
    public void ReportSuccess(string backend, ISet<string> sampled)
    {
        if (sampled.Add(backend))
        {
            Apply(_members[backend], static circuit => circuit.Record(failed: false));
        }
    }

    /// <summary>
    /// A request's attempt on the backend failed. Only failures that say something about the backend count, and a
    /// request counts once per backend (see <see cref="ReportSuccess"/>).
    /// </summary>
    public void ReportFailure(string backend, BackendError error, ISet<string> sampled)
    {
        // A model's own error or a full backend queue says nothing about the backend's health.
        if (error.Failure is BackendFailure.StreamError or BackendFailure.Busy ||
            (error.Failure == BackendFailure.ErrorStatus && error.StatusCode is < 500))
        {
            return;
        }

        var member = _members[backend];
        if (!sampled.Add(backend))
        {
            // A retry of a request already counted here: the same evidence again, not a new sample.
            return;
        }

        Apply(member, circuit =>
        {
            var change = circuit.Record(failed: true);
            var (requests, failed) = circuit.Window;
            LogBackendFailure(backend, error.Failure, error.Message, failed, requests);
            return change;
        });
    }

    /// <summary>Asks every backend for its models: an answer closes its circuit, none opens it.</summary>
    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_members.Values.Select(async member =>
        {
            var result = await member.Client.ListModelsAsync(cancellationToken);
            Apply(member, circuit => circuit.Probed(result.IsSuccess));
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
    /// into the pool, so the lock order is always member, then scheduler).
    /// </summary>
    private void Apply(Member member, Func<BackendCircuit, CircuitChange> step)
    {
        var told = ValueTask.CompletedTask;
        lock (member.Gate)
        {
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

        public Member(BackendPool pool, string name, BackendProtocol protocol, IModelServerClient client, BackendCircuit circuit)
        {
            Name = name;
            Protocol = protocol;
            Client = client;
            Circuit = circuit;
            _cooldown = pool._time.CreateTimer(
                static state =>
                {
                    var (pool, member) = ((BackendPool, Member))state!;
                    pool.Apply(member, static circuit => circuit.CoolDown());
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
internal sealed class RequestSweeper(
    Requests.RequestRegistry registry, Limits.RateLimits rates, IRequestQueue queue, IOptions<AnteroomOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retain = TimeSpan.FromSeconds(options.Value.Stream.RetainSeconds);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Clamp(retain.TotalSeconds / 4, 1, 60)), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            registry.Sweep(time.GetUtcNow() - retain);
            rates.Sweep();
            await queue.ForgetIdleUsersAsync(stoppingToken);
        }
    }
}
