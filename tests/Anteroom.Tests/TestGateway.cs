using System.Globalization;
using Anteroom.Scheduling;
using Anteroom.Simulator;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Anteroom.Tests;

/// <summary>A simulated model server to put behind the gateway.</summary>
internal sealed record TestBackend(string Name, SimulatorOptions Simulator, int Slots = 1, string Protocol = "ollama");

/// <summary>
/// The real gateway on Kestrel (loopback, a free port) in front of real simulated model servers, configured
/// through the same keys an operator uses.
/// </summary>
internal sealed class TestGateway : IAsyncDisposable
{
    private readonly AnteroomFactory _factory;
    private readonly Dictionary<string, SimulatedModelServer> _simulators;
    // No draining: a test that drops a response mid-stream must close the connection at once, as a client that
    // leaves does, not read on for up to two seconds (the handler's default) hoping to reuse it.
    private readonly SocketsHttpHandler _handler = new() { PooledConnectionLifetime = TimeSpan.FromMinutes(1), UseCookies = false, MaxResponseDrainSize = 0 };

    private TestGateway(AnteroomFactory factory, Dictionary<string, SimulatedModelServer> simulators, Uri address)
    {
        _factory = factory;
        _simulators = simulators;
        Address = address;
    }

    public Uri Address { get; }

    public Scheduler Scheduler => _factory.Services.GetRequiredService<Scheduler>();

    public SimulatedModelServer Simulator(string name) => _simulators[name];

    public Requests.RequestRegistry Registry => _factory.Services.GetRequiredService<Requests.RequestRegistry>();

    /// <summary>Where the endpoints admit requests: for tests that act as an endpoint at a moment HTTP cannot pin down.</summary>
    public Requests.Reception Reception => _factory.Services.GetRequiredService<Requests.Reception>();

    /// <summary>Fast simulator timing for tests that do not care about timing.</summary>
    public static SimulatorOptions FastSimulator(int outputTokens = 12) => new()
    {
        Models = ["llama3.1:8b"],
        Parallel = 1,
        TtftMs = 1,
        TokensPerSecond = 2000,
        OutputTokens = outputTokens,
    };

    public static Task<TestGateway> StartAsync(params TestBackend[] backends) => StartAsync(backends, new Dictionary<string, string?>());

    /// <summary>
    /// WebApplicationFactory finds the gateway's host by listening, process-wide, for the next host being built; a
    /// simulator host built at that moment by a test running in parallel could be taken for it. Hosts are built one
    /// at a time so that cannot happen.
    /// </summary>
    private static readonly SemaphoreSlim HostBuilding = new(1, 1);

    public static async Task<TestGateway> StartAsync(IReadOnlyList<TestBackend> backends, IDictionary<string, string?> settings)
    {
        await HostBuilding.WaitAsync();
        try
        {
            return await BuildAsync(backends, settings);
        }
        finally
        {
            HostBuilding.Release();
        }
    }

    private static async Task<TestGateway> BuildAsync(IReadOnlyList<TestBackend> backends, IDictionary<string, string?> settings)
    {
        var simulators = new Dictionary<string, SimulatedModelServer>();
        var all = new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["Logging:LogLevel:Default"] = "Warning",
            // Estimates that match the fast simulators, so admission does not refuse waits as too long.
            ["Anteroom:Estimates:TimeToFirstTokenMs"] = "5",
            ["Anteroom:Estimates:TokensPerSecond"] = "2000",
            ["Anteroom:Estimates:OutputTokens"] = "12",
            ["Anteroom:Queue:PositionUpdateMilliseconds"] = "0",
        };
        for (int i = 0; i < backends.Count; i++)
        {
            var backend = backends[i];
            var simulator = await SimulatedModelServer.StartAsync(backend.Simulator);
            simulators[backend.Name] = simulator;
            all[$"Anteroom:Backends:{i}:Name"] = backend.Name;
            all[$"Anteroom:Backends:{i}:Url"] = simulator.BaseAddress.ToString();
            all[$"Anteroom:Backends:{i}:Protocol"] = backend.Protocol;
            all[$"Anteroom:Backends:{i}:Slots"] = backend.Slots.ToString(CultureInfo.InvariantCulture);
            for (int m = 0; m < backend.Simulator.Models.Count; m++)
            {
                all[$"Anteroom:Backends:{i}:Models:{m}"] = backend.Simulator.Models[m];
            }
        }

        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        var factory = new AnteroomFactory(all);
        // Not UseKestrel(0): that rewrites the server's addresses after the app has started binding them itself, a
        // race that fails now and then under parallel tests (dotnet/aspnetcore#67714). The "urls" setting above
        // already binds a free loopback port.
        factory.UseKestrel();
        factory.StartServer();
        var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestGateway(factory, simulators, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>A client that speaks for one user (the <c>X-User</c> identity).</summary>
    public HttpClient Client(string? user = null)
    {
        var client = new HttpClient(_handler, disposeHandler: false) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (user is not null)
        {
            client.DefaultRequestHeaders.Add("X-User", user);
        }

        return client;
    }

    /// <summary>Waits, on the scheduler's change signal, until the condition holds.</summary>
    public async Task WaitForSchedulerAsync(Func<SchedulerSnapshot, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            long version = Scheduler.ChangeVersion;
            if (condition(Scheduler.Snapshot()))
            {
                return;
            }

            await Scheduler.WaitForChangeAsync(version, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _handler.Dispose();
        await _factory.DisposeAsync();
        foreach (var simulator in _simulators.Values)
        {
            await simulator.DisposeAsync();
        }
    }

    private sealed class AnteroomFactory(IDictionary<string, string?> settings) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        }
    }
}
