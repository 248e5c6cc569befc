using Anteroom.Simulator.Http;
using Anteroom.Simulator.Ollama;
using Anteroom.Simulator.OpenAI;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Anteroom.Simulator;

/// <summary>
/// A model server imitation on real HTTP: Ollama's <c>/api</c> routes and the OpenAI-compatible <c>/v1</c> routes,
/// with slots, a bounded queue, realistic timing, injected faults and cancellation that stops generation at once.
/// It is the backend in Anteroom's tests, benchmarks and demo. <c>/sim/stats</c>, <c>/sim/hold</c> and
/// <c>/sim/release</c> expose <see cref="Stats"/>, <see cref="Hold"/> and <see cref="Release"/> over HTTP.
/// </summary>
public sealed class SimulatedModelServer : IAsyncDisposable
{
    // Generations end as soon as shutdown begins, so this only bounds a client that will not read its last bytes.
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(5);

    private readonly WebApplication _app;
    private readonly Simulation _simulation;
    private readonly BodyRecorder _bodies;
    private int _disposed;

    private SimulatedModelServer(WebApplication app, Simulation simulation, BodyRecorder bodies, IReadOnlyList<Uri> addresses)
    {
        _app = app;
        _simulation = simulation;
        _bodies = bodies;
        Addresses = addresses;
    }

    /// <summary>The address the server actually listens on (the port chosen when the URL asked for port 0), ending in '/'.</summary>
    public Uri BaseAddress => Addresses[0];

    /// <summary>Every address the server listens on.</summary>
    internal IReadOnlyList<Uri> Addresses { get; }

    /// <summary>A snapshot of the counters.</summary>
    public SimulatorStats Stats => _simulation.Stats.Snapshot();

    /// <summary>The latest request bodies, oldest first, as received; empty unless <see cref="SimulatorOptions.RecordBodies"/> is set.</summary>
    public IReadOnlyList<ReceivedBody> ReceivedBodies => _bodies.Snapshot();

    /// <summary>Generations stopped by an injected stall right now.</summary>
    internal int Stalled => _simulation.Stats.Stalled;

    /// <summary>Starts Kestrel on <paramref name="url"/> (several separated by ';') and returns once it accepts connections.</summary>
    /// <param name="options">The behaviour; copied and validated, so later changes to it have no effect.</param>
    /// <param name="url">Where to listen; port 0 lets the operating system choose.</param>
    /// <param name="timeProvider">The clock behind every delay and timestamp; the system clock when null.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="IOException">The address cannot be bound.</exception>
    public static async Task<SimulatedModelServer> StartAsync(
        SimulatorOptions options,
        string url = "http://127.0.0.1:0",
        TimeProvider? timeProvider = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        var simulation = new Simulation(options.ValidatedCopy(), timeProvider ?? TimeProvider.System);

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = typeof(SimulatedModelServer).Assembly.GetName().Name });
        builder.WebHost.UseKestrelCore().UseSockets(sockets =>
            {
                // With disconnects injected, a two-byte socket write buffer makes every flush wait until the bytes
                // are with the operating system, so tokens already flushed reach the client before the connection
                // shuts behind them. It costs throughput, so a run without disconnects keeps Kestrel's buffering.
                if (simulation.Options.DisconnectRate > 0)
                    sockets.MaxWriteBufferSize = 2;
            })
            .UseUrls(url)
            .ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(HalfClose.Install));
        builder.Services.AddRoutingCore();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
        builder.Logging.AddConsole().SetMinimumLevel(LogLevel.Warning);

        var app = builder.Build();
        var bodies = new BodyRecorder(simulation.Options.RecordBodies);
        if (bodies.IsOn)
            app.Use(bodies.RecordAsync);
        new OllamaApi(simulation).Map(app);
        new OpenAIApi(simulation).Map(app);
        new ControlApi(simulation).Map(app);

        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            simulation.Dispose();
            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses
            .Select(address => new Uri(address.EndsWith('/') ? address : address + "/"))
            .ToList();
        return new SimulatedModelServer(app, simulation, bodies, addresses);
    }

    /// <summary>
    /// Pauses generations before their first token: those that have not sent it yet, and every later one, until
    /// <see cref="Release"/>. They keep their slots, so a test can hold the server busy for exactly as long as it needs.
    /// </summary>
    public void Hold() => _simulation.HoldGate.Hold();

    /// <summary>Lets held generations go on.</summary>
    public void Release() => _simulation.HoldGate.Release();

    /// <summary>Completes once <paramref name="condition"/> holds, checking it now and on every change of the counters.</summary>
    public Task WaitUntilAsync(Func<SimulatorStats, bool> condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return _simulation.Stats.WaitUntilAsync(condition, cancellationToken);
    }

    /// <summary>Ends every generation (their clients see the connection close) and stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _simulation.Stop();
        try
        {
            await _app.StopAsync(CancellationToken.None);
        }
        finally
        {
            await _app.DisposeAsync();
            _simulation.Dispose();
        }
    }
}
