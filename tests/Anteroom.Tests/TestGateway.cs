using System.Globalization;
using Anteroom.Scheduling;
using Anteroom.Simulator;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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

    private readonly string? _ownDataDirectory;

    private TestGateway(AnteroomFactory factory, Dictionary<string, SimulatedModelServer> simulators, Uri address, string? ownDataDirectory)
    {
        _factory = factory;
        _simulators = simulators;
        Address = address;
        _ownDataDirectory = ownDataDirectory;
    }

    public Uri Address { get; }

    public IRequestQueue Queue => _factory.Services.GetRequiredService<IRequestQueue>();

    public SimulatedModelServer Simulator(string name) => _simulators[name];

    public Requests.IRequestRegistry Registry => _factory.Services.GetRequiredService<Requests.IRequestRegistry>();

    public IServiceProvider Services => _factory.Services;

    /// <summary>The server's limits, read per request: a test may tighten one for the requests it sends next.</summary>
    public Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerLimits KestrelLimits =>
        Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>>().Value.Limits;

    /// <summary>Where the endpoints admit requests: for tests that act as an endpoint at a moment HTTP cannot pin down.</summary>
    public Requests.Reception Reception => _factory.Services.GetRequiredService<Requests.Reception>();

    /// <summary>A fresh directory for a gateway's data, for tests that restart a gateway on the same data.</summary>
    public static string NewDataDirectory() => Directory.CreateTempSubdirectory("anteroom-test-").FullName;

    /// <summary>Creates an API key the way the admin API and the command line do; returns its token.</summary>
    public async Task<string> CreateKeyAsync(string user, string? tier = null, bool admin = false, bool canActForUsers = false, TimeSpan? expiresIn = null)
    {
        var issuer = new Anteroom.Identity.KeyIssuer(
            Services.GetRequiredService<Anteroom.Storage.IKeyStore>(),
            Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Anteroom.Configuration.AnteroomOptions>>().Value,
            Services.GetRequiredService<TimeProvider>());
        var (token, _, problem) = await issuer.IssueAsync(new Anteroom.Identity.KeyOrder(user, tier, expiresIn, admin, canActForUsers));
        Assert.True(token is not null, problem);
        return token!;
    }

    /// <summary>Fast simulator timing for tests that do not care about timing.</summary>
    public static SimulatorOptions FastSimulator(int outputTokens = 12) => new()
    {
        Models = ["llama3.1:8b"],
        Parallel = 1,
        TtftMs = 1,
        TokensPerSecond = 2000,
        OutputTokens = outputTokens,
    };

    /// <summary>A backend slow enough (50 tokens/s, 2,000 tokens) that a request is still generating when a test acts on it.</summary>
    public static SimulatorOptions SlowSimulator() => new()
    {
        Models = ["llama3.1:8b"],
        Parallel = 1,
        TtftMs = 1,
        TokensPerSecond = 50,
        OutputTokens = 2000,
    };

    public static Task<TestGateway> StartAsync(params TestBackend[] backends) => StartAsync(backends, new Dictionary<string, string?>());

    /// <summary>
    /// WebApplicationFactory finds the gateway's host by listening, process-wide, for the next host being built; a
    /// simulator host built at that moment by a test running in parallel could be taken for it. Hosts are built one
    /// at a time so that cannot happen.
    /// </summary>
    private static readonly SemaphoreSlim HostBuilding = new(1, 1);

    /// <param name="backends">The simulated model servers behind it.</param>
    /// <param name="settings">Configuration, as an operator would set it.</param>
    /// <param name="logs">Receives the gateway's log too, for tests of what it tells the operator.</param>
    /// <param name="socketSendBufferBytes">
    /// The send buffer of the gateway's client connections (SO_SNDBUF, inherited from the listening socket), for
    /// tests of what a client that stops reading costs: otherwise the kernel grows it to megabytes on loopback.
    /// </param>
    /// <param name="time">The gateway's clock, for tests that drive it (a FakeTimeProvider); the system's otherwise.</param>
    public static async Task<TestGateway> StartAsync(
        IReadOnlyList<TestBackend> backends, IDictionary<string, string?> settings, ILoggerProvider? logs = null, int? socketSendBufferBytes = null,
        TimeProvider? time = null)
    {
        await HostBuilding.WaitAsync();
        try
        {
            return await BuildAsync(backends, settings, logs, socketSendBufferBytes, time);
        }
        finally
        {
            HostBuilding.Release();
        }
    }

    private static async Task<TestGateway> BuildAsync(
        IReadOnlyList<TestBackend> backends, IDictionary<string, string?> settings, ILoggerProvider? logs, int? socketSendBufferBytes, TimeProvider? time)
    {
        var simulators = new Dictionary<string, SimulatedModelServer>();
        var all = new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["Logging:LogLevel:Default"] = "Warning",
            // Above the shipped Information, so a test run does not print every gateway's start and stop.
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
            // Estimates that match the fast simulators, so admission does not refuse waits as too long.
            ["Anteroom:Estimates:TimeToFirstTokenMs"] = "5",
            ["Anteroom:Estimates:TokensPerSecond"] = "2000",
            ["Anteroom:Estimates:OutputTokens"] = "12",
            ["Anteroom:Queue:PositionUpdateMilliseconds"] = "0",
            // Every test browser comes from 127.0.0.1; tests of the per-address bound set their own.
            ["Anteroom:Auth:MaxSessionsPerAddress"] = "1000",
            // Tests stop gateways with requests held on their simulators: stop them at once. A drain test sets its own.
            ["Anteroom:Shutdown:DrainSeconds"] = "0",
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

        string? ownDataDirectory = null;
        if (!settings.ContainsKey("Anteroom:Data:Directory"))
        {
            ownDataDirectory = NewDataDirectory();
            all["Anteroom:Data:Directory"] = ownDataDirectory;
        }

        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        var factory = new AnteroomFactory(all, logs, socketSendBufferBytes, time);
        // Not UseKestrel(0): that rewrites the server's addresses after the app has started binding them itself, a
        // race that fails now and then under parallel tests (dotnet/aspnetcore#67714). The "urls" setting above
        // already binds a free loopback port.
        factory.UseKestrel();
        factory.StartServer();
        var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestGateway(factory, simulators, new Uri(address.TrimEnd('/') + "/"), ownDataDirectory);
    }

    /// <summary>
    /// A client that speaks for one user: in open mode, a browser with a session cookie this gateway issued (for a
    /// session derived from the name, so the same name is the same browser); with no name, just the client address.
    /// </summary>
    public HttpClient Client(string? user = null)
    {
        var client = new HttpClient(_handler, disposeHandler: false) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (user is not null)
        {
            string cookie = Services.GetRequiredService<Anteroom.Identity.BrowserSessions>().CookieValue(SessionOf(user));
            client.DefaultRequestHeaders.Add("Cookie", $"{Anteroom.Identity.BrowserSessions.CookieName}={cookie}");
        }

        return client;
    }

    /// <summary>A client that presents an API key as the OpenAI SDKs do.</summary>
    public HttpClient KeyClient(string token)
    {
        var client = new HttpClient(_handler, disposeHandler: false) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>The session cookie value of the named test browser.</summary>
    public static string SessionOf(string user) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(user)))[..32];

    /// <summary>Waits, on the scheduler's change signal, until the condition holds.</summary>
    public async Task WaitForSchedulerAsync(Func<SchedulerSnapshot, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            long version = Queue.ChangeVersion;
            if (condition(await Queue.GetSnapshotAsync(cancellationToken)))
            {
                return;
            }

            await Queue.WaitForChangeAsync(version, cancellationToken);
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

        if (_ownDataDirectory is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(_ownDataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A background writer of the stopped host (the cookie key ring) may add a file mid-delete; once
                // more finds it done. A leftover temporary directory must not fail the test that used it.
                try
                {
                    Directory.Delete(_ownDataDirectory, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private sealed class AnteroomFactory(IDictionary<string, string?> settings, ILoggerProvider? logs, int? socketSendBufferBytes, TimeProvider? time)
        : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            if (logs is not null)
            {
                builder.ConfigureLogging(logging => logging.AddProvider(logs));
            }

            if (time is not null)
            {
                // After the gateway's own registrations, so this clock is the one every service gets.
                builder.ConfigureTestServices(services => services.AddSingleton(time));
            }

            if (socketSendBufferBytes is { } sendBuffer)
            {
                builder.ConfigureServices(services => services.Configure<SocketTransportOptions>(sockets =>
                    sockets.CreateBoundListenSocket = endpoint =>
                    {
                        var socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
                        socket.SendBufferSize = sendBuffer;
                        return socket;
                    }));
            }
        }
    }
}
