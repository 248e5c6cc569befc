using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Anteroom.Backends.Tests.Fakes;

/// <summary>
/// A real HTTP/1.1 server on a loopback socket that starts a chunked streaming answer and then keeps the
/// connection open, so a test can see whether the client really closed it — what makes a real backend stop.
/// </summary>
internal sealed class LoopbackModelServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly TaskCompletionSource _clientHungUp = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _serving;

    public LoopbackModelServer(string mediaType, string firstPiece)
    {
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _serving = ServeOneAsync(mediaType, firstPiece);
    }

    public Uri BaseAddress { get; }

    /// <summary>Completes when the client closed the connection.</summary>
    public Task ClientHungUp => _clientHungUp.Task;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _serving;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // The test ended before the client hung up; the failed assertion, if any, says why.
        }

        _stop.Dispose();
    }

    private async Task ServeOneAsync(string mediaType, string firstPiece)
    {
        using var socket = await _listener.AcceptSocketAsync(_stop.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await ReadRequestAsync(stream);

        var piece = Encoding.UTF8.GetBytes(firstPiece);
        var head = $"HTTP/1.1 200 OK\r\nContent-Type: {mediaType}\r\nTransfer-Encoding: chunked\r\n\r\n{piece.Length:x}\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
        await stream.WriteAsync(piece, _stop.Token);
        await stream.WriteAsync("\r\n"u8.ToArray(), _stop.Token);

        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer, _stop.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
            // A reset is a hang-up too.
        }

        _clientHungUp.TrySetResult();
    }

    private async Task ReadRequestAsync(NetworkStream stream)
    {
        var received = new List<byte>();
        var buffer = new byte[4096];
        int headEnd;
        while ((headEnd = IndexOfHeadEnd(received)) < 0)
        {
            var read = await stream.ReadAsync(buffer, _stop.Token);
            if (read == 0)
            {
                throw new IOException("The client closed the connection before sending a request.");
            }

            received.AddRange(buffer.AsSpan(0, read));
        }

        var head = Encoding.ASCII.GetString(received.ToArray(), 0, headEnd);
        var contentLength = head.Split("\r\n")
            .Where(line => line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            .Select(line => int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture))
            .SingleOrDefault();
        var bodyBytes = received.Count - headEnd - 4;
        while (bodyBytes < contentLength)
        {
            bodyBytes += await stream.ReadAsync(buffer, _stop.Token);
        }
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
