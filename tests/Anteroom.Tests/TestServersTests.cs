using System.Net.Sockets;
using System.Text;
using Anteroom.TestServers;
using Npgsql;

namespace Anteroom.Tests;

/// <summary>The real servers the shared-state tests run against start, answer, and restart as those tests need.</summary>
public sealed class TestServersTests
{
    [Fact]
    public async Task A_redis_server_answers_and_comes_back_empty_on_the_same_port_after_a_kill()
    {
        await using var redis = await RedisServer.StartAsync();
        Assert.Equal("+OK", await RedisAsync(redis.Port, "SET anteroom:probe 1"));
        Assert.Equal("$1", await RedisAsync(redis.Port, "GET anteroom:probe"));

        await redis.KillAsync();
        Assert.False(redis.IsRunning);
        await Assert.ThrowsAnyAsync<SocketException>(() => RedisAsync(redis.Port, "PING"));

        await redis.StartAgainAsync();
        Assert.Equal("$-1", await RedisAsync(redis.Port, "GET anteroom:probe"));
    }

    [Fact]
    public async Task A_postgres_server_gives_each_test_its_own_empty_database()
    {
        await using var postgres = await PostgresServer.StartAsync();
        string first = await postgres.CreateDatabaseAsync();
        string second = await postgres.CreateDatabaseAsync();
        Assert.NotEqual(first, second);

        await using (var connection = new NpgsqlConnection(first))
        {
            await connection.OpenAsync();
            await new NpgsqlCommand("CREATE TABLE probe (id int)", connection).ExecuteNonQueryAsync();
        }

        await using var other = new NpgsqlConnection(second);
        await other.OpenAsync();
        var count = await new NpgsqlCommand("SELECT count(*) FROM information_schema.tables WHERE table_name = 'probe'", other).ExecuteScalarAsync();
        Assert.Equal(0L, count);
    }

    /// <summary>Sends one inline command and returns the first line of the reply.</summary>
    private static async Task<string> RedisAsync(int port, string command)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return await reader.ReadLineAsync() ?? "";
    }
}
