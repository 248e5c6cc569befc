using Anteroom.TestServers;
using StackExchange.Redis;

namespace Anteroom.Tests.Shared;

/// <summary>
/// One real <c>redis-server</c> per test class and a multiplexer connected to it. Tests share the server and keep
/// apart by key prefix (<see cref="NewPrefix"/>).
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private RedisServer? _server;
    private ConnectionMultiplexer? _connection;

    public RedisServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public IConnectionMultiplexer Connection => _connection ?? throw new InvalidOperationException("Not started.");

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>
    /// A multiplexer as the gateway would hold one: it survives the server going away and reconnects by itself.
    /// Its timeouts are long on purpose, so an operation that fails at once is told apart from one that timed out.
    /// </summary>
    public async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var options = ConfigurationOptions.Parse(Server.Configuration);
        options.AbortOnConnectFail = false;
        options.ReconnectRetryPolicy = new LinearRetry(100);
        options.AsyncTimeout = 30_000;
        options.SyncTimeout = 30_000;
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartAsync();
        _connection = await ConnectAsync();
    }

    public async Task DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
