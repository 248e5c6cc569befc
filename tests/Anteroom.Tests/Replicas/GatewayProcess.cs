using System.Globalization;
using System.Text.RegularExpressions;
using Anteroom.TestServers;

namespace Anteroom.Tests.Replicas;

/// <summary>
/// The gateway as an operator runs it: <c>dotnet anteroom.dll serve</c> in its own process, on a free loopback port,
/// with its own data directory, configured on the command line. Its own process, so a test can kill it with -9 as a
/// crashed replica is, which an in-process gateway cannot show. Ready once it prints where it listens.
/// </summary>
internal sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly ServerProcess _process;
    private readonly string _dataDirectory;
    private readonly SocketsHttpHandler _handler = new() { UseCookies = false, MaxResponseDrainSize = 0 };

    private GatewayProcess(ServerProcess process, string dataDirectory, Uri address)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>Everything it printed so far, for a failing test's message.</summary>
    public string Output => _process.Output;

    /// <summary>Starts a gateway with <paramref name="settings"/> (keys as in appsettings.json, e.g. <c>Anteroom:Redis:Configuration</c>).</summary>
    public static async Task<GatewayProcess> StartAsync(IReadOnlyDictionary<string, string?> settings)
    {
        string dataDirectory = TestGateway.NewDataDirectory();
        var arguments = new List<string>
        {
            Path.Combine(AppContext.BaseDirectory, "anteroom.dll"), "serve",
            "--urls", "http://127.0.0.1:0",
            $"--Anteroom:Data:Directory={dataDirectory}",
            "--Logging:LogLevel:Anteroom.Requests=Warning",
        };
        arguments.AddRange(settings.Where(s => s.Value is not null).Select(s => $"--{s.Key}={s.Value}"));
        var process = await ServerProcess.StartAsync("dotnet", arguments, readyLine: "Anteroom is listening: open http://");
        var address = new Uri(Listening().Match(process.ReadyLine).Value);
        return new GatewayProcess(process, dataDirectory, address);
    }

    /// <summary>The settings of a backend, as <see cref="TestGateway"/> writes them.</summary>
    public static Dictionary<string, string?> Backend(int index, string name, Uri url, int slots, string protocol, params string[] models)
    {
        var settings = new Dictionary<string, string?>
        {
            [$"Anteroom:Backends:{index}:Name"] = name,
            [$"Anteroom:Backends:{index}:Url"] = url.ToString(),
            [$"Anteroom:Backends:{index}:Slots"] = slots.ToString(CultureInfo.InvariantCulture),
            [$"Anteroom:Backends:{index}:Protocol"] = protocol,
        };
        for (int m = 0; m < models.Length; m++)
        {
            settings[$"Anteroom:Backends:{index}:Models:{m}"] = models[m];
        }

        return settings;
    }

    /// <summary>A client of this gateway; <paramref name="cookie"/> is sent as the <c>Cookie</c> header when given.</summary>
    public HttpClient Client(string? cookie = null)
    {
        var client = new HttpClient(_handler, disposeHandler: false) { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(60) };
        if (cookie is not null)
        {
            client.DefaultRequestHeaders.Add("Cookie", cookie);
        }

        return client;
    }

    /// <summary>Stops it with SIGTERM, as a service manager does, and returns its exit code.</summary>
    public Task<int> TerminateAsync(TimeSpan timeout) => _process.TerminateAsync(timeout);

    /// <summary>Kills it with -9: no drain, no goodbye, as a crashed replica.</summary>
    public Task KillAsync() => _process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _handler.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/")]
    private static partial Regex Listening();
}
