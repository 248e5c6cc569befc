namespace Anteroom.TestServers;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, its data in a temporary directory; stopped and the directory
/// removed when disposed. It can be killed and started again on the same port, as a Redis restart under load is.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _program;
    private readonly string _directory;
    private ServerProcess? _process;

    private RedisServer(string program, string directory, int port)
    {
        _program = program;
        _directory = directory;
        Port = port;
    }

    /// <summary>The port it listens on, on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string for it.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Whether it is running now.</summary>
    public bool IsRunning => _process is not null;

    /// <summary>Starts one and completes once it accepts connections.</summary>
    public static async Task<RedisServer> StartAsync()
    {
        string program = ServerProcess.Find("redis-server", "apt-get install redis-server", "/usr/bin/redis-server");
        var server = new RedisServer(program, Directory.CreateTempSubdirectory("anteroom-redis-").FullName, ServerProcess.FreePort());
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Kills it at once (<c>kill -9</c>); what it held in memory is gone.</summary>
    public async Task KillAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            await process.DisposeAsync();
        }
    }

    /// <summary>Starts it again on the same port after <see cref="KillAsync"/>, empty.</summary>
    public async Task StartAgainAsync()
    {
        if (_process is not null)
        {
            throw new InvalidOperationException("redis-server is already running.");
        }

        _process = await ServerProcess.StartAsync(
            _program,
            ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _directory,
             "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "notice"],
            readyLine: "Ready to accept connections");
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
