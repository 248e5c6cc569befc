using Anteroom.Configuration;
using Anteroom.Requests;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>
/// A graceful stop (SIGTERM, Ctrl+C): while the server still listens, new requests are refused with 503 and
/// <c>Retry-After</c> and <c>/readyz</c> fails, so a load balancer sends them elsewhere; requests still waiting for a
/// slot end at once with an error that says when to send them again; running requests get up to
/// <c>Anteroom:Shutdown:DrainSeconds</c> to finish, and whatever still runs then is stopped the same way.
/// </summary>
/// <remarks>
/// It acts in the host's stopping phase (<see cref="IHostedLifecycleService.StoppingAsync"/>), which comes before any
/// service stops, the server's included: the server then closes its listeners and waits for responses that are
/// already ending, and <see cref="RequestLife"/> waits for their endings to be recorded.
/// </remarks>
internal sealed partial class GatewayDrain(
    Draining draining, IRequestRegistry registry, RequestLife life, IOptions<AnteroomOptions> options, TimeProvider time, ILogger<GatewayDrain> log)
    : IHostedLifecycleService
{
    private readonly TimeSpan _drain = TimeSpan.FromSeconds(options.Value.Shutdown.DrainSeconds);

    /// <summary>How long the host may take to stop: the drain, and then time for the stopped requests to be recorded.</summary>
    public static TimeSpan ShutdownTimeout(double drainSeconds) => TimeSpan.FromSeconds(drainSeconds + 15);

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        draining.Begin();
        if (life.Running > 0)
        {
            // Only a stop that has something to wait for says so: an idle stop is the host's own one line.
            LogDraining(life.Running, _drain.TotalSeconds);
        }

        await registry.StopWaitingAsync(Draining.Reason);
        using var deadline = new CancellationTokenSource(_drain, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        if (!await life.WhenIdleAsync(linked.Token))
        {
            LogCutOff(life.Running);
            await registry.StopAllAsync(Draining.Reason);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: admitting nothing new; {Running} requests in flight, running ones get up to {DrainSeconds} s to finish")]
    private partial void LogDraining(int running, double drainSeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopping: the drain time ran out with {Running} requests still running; they are stopped")]
    private partial void LogCutOff(int running);
}
