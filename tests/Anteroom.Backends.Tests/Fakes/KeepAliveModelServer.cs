using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Anteroom.Backends.Tests.Fakes;

/// <summary>
/// A real HTTP/1.1 server on a loopback socket that answers every request on a connection with the same complete
/// body and keeps the connection open for the next one, so a test can count how many connections the client used.
/// </summary>
internal sealed class KeepAliveModelServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly byte[] _response;
    private readonly Task _accepting;
    private readonly List<Task> _serving = [];
    private int _connections;

    public KeepAliveModelServer(string mediaType, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        _response = [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: {mediaType}\r\nContent-Length: {bytes.Length}\r\n\r\n"), .. bytes];
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri BaseAddress { get; }

    /// <summary>How many connections the client opened so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Task[] serving;
        lock (_serving)
        {
            serving = [_accepting, .. _serving];
        }

        foreach (var task in serving)
        {
            try
            {
                await task;
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
            {
                // Stopping the server ends whatever it was waiting for.
            }
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            Interlocked.Increment(ref _connections);
            lock (_serving)
            {
                _serving.Add(ServeAsync(socket));
            }
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            while (await ReadRequestAsync(stream))
            {
                await stream.WriteAsync(_response, _stop.Token);
            }
        }
    }

    // False when the client closed the connection instead of sending another request.
    private async Task<bool> ReadRequestAsync(NetworkStream stream)
    {
        var received = new List<byte>();
        var buffer = new byte[4096];
        int headEnd;
        while ((headEnd = IndexOfHeadEnd(received)) < 0)
        {
            int read;
            try
            {
                read = await stream.ReadAsync(buffer, _stop.Token);
            }
            catch (IOException)
            {
                return false;
            }

            if (read == 0)
            {
                return false;
            }

            received.AddRange(buffer.AsSpan(0, read));
        }

        var head = Encoding.ASCII.GetString(received.ToArray(), 0, headEnd);
        var contentLength = head.Split("\r\n")
            .Where(line => line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            .Select(line => int.Parse(line["Content-Length:".Length..].Trim(), CultureInfo.InvariantCulture))
            .SingleOrDefault();
        var bodyBytes = received.Count - headEnd - 4;
        while (bodyBytes < contentLength)
        {
            var read = await stream.ReadAsync(buffer, _stop.Token);
            if (read == 0)
            {
                return false;
            }

            bodyBytes += read;
        }

        return true;
    }

    private static int IndexOfHeadEnd(List<byte> received)
    {
        for (var i = 0; i + 3 < received.Count; i++)
        {
            if (received[i] == '\r' && received[i + 1] == '\n' && received[i + 2] == '\r' && received[i + 3] == '\n')
            {
                return i;
            }
        }

        return -1;
    }
}
