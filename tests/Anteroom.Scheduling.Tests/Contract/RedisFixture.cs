using Anteroom.TestServers;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Tests.Contract;

/// <summary>One real redis-server and one connection to it for a test class; each test uses its own key prefix.</summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private RedisServer? _server;
    private ConnectionMultiplexer? _connection;

    public IConnectionMultiplexer Connection => _connection ?? throw new InvalidOperationException("The fixture has not started.");

    /// <summary>A prefix no other test uses.</summary>
    public static string NewPrefix() => $"test:{Guid.NewGuid():N}:";

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartAsync();
        _connection = await ConnectionMultiplexer.ConnectAsync(_server.Configuration);
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
