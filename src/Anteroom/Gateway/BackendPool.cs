using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>
/// The clients of the configured model servers and their health: a backend that fails several times in a row,
/// or does not answer a probe, takes no new tickets until a probe succeeds again.
/// </summary>
internal sealed partial class BackendPool : IDisposable
{
    private readonly Dictionary<string, Member> _members = new(StringComparer.Ordinal);
    private readonly HttpClient _http;
    private readonly Scheduler _scheduler;
    private readonly ILogger<BackendPool> _log;
    private readonly int _failuresBeforeUnhealthy;

    public BackendPool(IOptions<AnteroomOptions> options, Scheduler scheduler, TimeProvider time, ILogger<BackendPool> log)
    {
        _scheduler = scheduler;
        _log = log;
        _failuresBeforeUnhealthy = options.Value.Health.FailuresBeforeUnhealthy;
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
        };
        foreach (var backend in options.Value.Backends)
        {
            var protocol = backend.ParsedProtocol();
            var client = ModelServerClient.Create(protocol, _http, new Uri(backend.Url!), clientOptions);
            _members[backend.Name!] = new Member(backend.Name!, protocol, client);
        }
    }

    public IModelServerClient Client(string backend) => _members[backend].Client;

    public BackendProtocol Protocol(string backend) => _members[backend].Protocol;

    public void ReportSuccess(string backend) => Interlocked.Exchange(ref _members[backend].ConsecutiveFailures, 0);

    public void ReportFailure(string backend, BackendError error)
    {
        // A model's own error or a full backend queue says nothing about the backend's health.
        if (error.Failure is BackendFailure.StreamError or BackendFailure.Busy ||
            (error.Failure == BackendFailure.ErrorStatus && error.StatusCode is < 500))
        {
            return;
        }

        int failures = Interlocked.Increment(ref _members[backend].ConsecutiveFailures);
        LogBackendFailure(backend, error.Failure, error.Message, failures);
        if (failures == _failuresBeforeUnhealthy)
        {
            LogBackendUnhealthy(backend, failures);
            _scheduler.SetBackendHealth(backend, false);
        }
    }

    /// <summary>Asks every backend for its models and marks it healthy or not by the answer.</summary>
    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_members.Values.Select(async member =>
        {
            var result = await member.Client.ListModelsAsync(cancellationToken);
            bool wasHealthy = _scheduler.IsBackendHealthy(member.Name);
            if (result.IsSuccess)
            {
                Interlocked.Exchange(ref member.ConsecutiveFailures, 0);
                if (!wasHealthy)
                {
                    LogBackendRecovered(member.Name);
                }
            }
            else if (wasHealthy)
            {
                LogBackendUnhealthy(member.Name, 0);
            }

            _scheduler.SetBackendHealth(member.Name, result.IsSuccess);
        }));
    }

    public void Dispose() => _http.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Backend {Backend} failed ({Failure}: {Message}); {Failures} in a row")]
    private partial void LogBackendFailure(string backend, BackendFailure failure, string message, int failures);

    [LoggerMessage(Level = LogLevel.Error, Message = "Backend {Backend} is unhealthy (failures in a row: {Failures}); it takes no new requests until a probe succeeds")]
    private partial void LogBackendUnhealthy(string backend, int failures);

    [LoggerMessage(Level = LogLevel.Information, Message = "Backend {Backend} answers again and takes requests")]
    private partial void LogBackendRecovered(string backend);

    private sealed class Member(string name, BackendProtocol protocol, IModelServerClient client)
    {
        public string Name { get; } = name;

        public BackendProtocol Protocol { get; } = protocol;

        public IModelServerClient Client { get; } = client;

        public int ConsecutiveFailures;
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

/// <summary>Forgets ended requests once their replay window has passed.</summary>
/// <summary>
/// Forgets ended requests once their replay window has passed, and callers whose rate limits and fair-share
/// accounts hold nothing.
/// </summary>
internal sealed class RequestSweeper(
    Requests.RequestRegistry registry, Limits.RateLimits rates, Scheduler scheduler, IOptions<AnteroomOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retain = TimeSpan.FromSeconds(options.Value.Stream.RetainSeconds);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Clamp(retain.TotalSeconds / 4, 1, 60)), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            registry.Sweep(time.GetUtcNow() - retain);
            rates.Sweep();
            scheduler.ForgetIdleUsers();
        }
    }
}
