using System.Net;
using System.Net.Sockets;
using Anteroom.Simulator;

namespace Anteroom.Gateway;

/// <summary>
/// The simulated model server started with the gateway when no backend is configured. Its address is reserved
/// before the gateway is built (the backend configuration names it) and the server starts and stops with the host.
/// </summary>
internal sealed class EmbeddedSimulator : IHostedService, IAsyncDisposable
{
    public const string BackendName = "simulator";

    private SimulatedModelServer? _server;

    private EmbeddedSimulator(Uri address) => Address = address;

    public Uri Address { get; }

    /// <summary>Demo timing: slow enough that a few browser tabs see the queue move.</summary>
    public SimulatorOptions Options { get; } = new()
    {
        Models = ["llama3.1:8b", "qwen2.5:7b"],
        Parallel = 1,
        TtftMs = 300,
        TokensPerSecond = 25,
        OutputTokens = 120,
    };

    /// <summary>Reserves a free loopback port for the simulator.</summary>
    public static EmbeddedSimulator OnFreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new EmbeddedSimulator(new Uri($"http://127.0.0.1:{port}/"));
    }

    public async Task StartAsync(CancellationToken cancellationToken) =>
        _server = await SimulatedModelServer.StartAsync(Options, Address.ToString().TrimEnd('/'), cancellationToken: cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => DisposeAsync().AsTask();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _server, null) is { } server)
        {
            await server.DisposeAsync();
        }
    }
}
