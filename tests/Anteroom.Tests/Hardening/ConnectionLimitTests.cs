using System.Net.Sockets;
using System.Text;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Hardening;

/// <summary>Anteroom:MaxConnections bounds the connections the server holds, however many a client opens.</summary>
public sealed class ConnectionLimitTests
{
    [Fact]
    public async Task Connections_BeyondMaxConnections_AreClosedAtOnce_AndOneFreedServesAgain()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:MaxConnections"] = "2" }, keysMode: false);

        using var first = await KeptAliveAsync(gateway, ct);
        using var second = await KeptAliveAsync(gateway, ct);
        using var third = new TcpClient();
        await third.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        string refused = await AskVersionAsync(third.GetStream(), ct);
        first.Dispose();
        string served = await AskVersionAgainUntilServedAsync(gateway, ct);

        Assert.Equal("", refused);
        Assert.StartsWith("HTTP/1.1 200", served, StringComparison.Ordinal);
    }

    /// <summary>A connection that has been served once and is held open, as browsers keep theirs.</summary>
    private static async Task<TcpClient> KeptAliveAsync(TestGateway gateway, CancellationToken ct)
    {
        var client = new TcpClient();
        await client.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        Assert.StartsWith("HTTP/1.1 200", await AskVersionAsync(client.GetStream(), ct), StringComparison.Ordinal);
        return client;
    }

    /// <summary>The status line of the answer to GET /api/version, or "" when the server closed the connection.</summary>
    private static async Task<string> AskVersionAsync(NetworkStream stream, CancellationToken ct)
    {
        try
        {
            await stream.WriteAsync("GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"u8.ToArray(), ct);
            var buffer = new byte[4096];
            int read = await stream.ReadAsync(buffer, ct);
            return Encoding.ASCII.GetString(buffer, 0, read).Split("\r\n")[0];
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>
    /// The server notices a closed connection asynchronously; new connections are tried until one is served, with a
    /// short pause between tries so the loop does not starve the server it waits for.
    /// </summary>
    private static async Task<string> AskVersionAgainUntilServedAsync(TestGateway gateway, CancellationToken ct)
    {
        while (true)
        {
            using var client = new TcpClient();
            await client.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
            string status = await AskVersionAsync(client.GetStream(), ct);
            if (status.Length > 0)
            {
                return status;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), ct);
        }
    }
}
