using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Anteroom.Simulator.Http;

/// <summary>
/// Ends a connection mid-response the way a crashed server's kernel does: every byte already flushed still reaches
/// the client, then the connection closes without the response's end. <see cref="HttpContext.Abort"/> alone would
/// discard bytes Kestrel had not yet handed to the socket, so a client could miss tokens the server had sent.
/// </summary>
internal static class ConnectionCut
{
    private static readonly object Key = new();

    /// <summary>Gives every connection on <paramref name="listen"/> an output that can be cut.</summary>
    public static void Install(ListenOptions listen) => listen.Use(next => connection =>
    {
        var output = new CuttableOutput(connection.Transport.Output);
        connection.Items[Key] = output;
        connection.Transport = new Duplex(connection.Transport.Input, output);
        return next(connection);
    });

    public static void Cut(HttpContext http)
    {
        if (http.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(Key, out var value) == true && value is CuttableOutput output)
            output.Cut();
        else
        {
            Console.Error.WriteLine("DEBUGCUT fallback " + string.Join(',', http.Features.Select(f => f.Key.Name)));
            http.Abort();
        }
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    /// <summary>
    /// Forwards to the socket's output until cut; then completes it, which sends what is buffered and closes, and
    /// swallows whatever Kestrel writes afterwards (the chunked terminator above all).
    /// </summary>
    private sealed class CuttableOutput(PipeWriter inner) : PipeWriter
    {
        private readonly Lock _lock = new();
        private byte[] _sink = [];
        private bool _cut;

        public void Cut()
        {
            lock (_lock)
            {
                if (_cut)
                    return;
                _cut = true;
                inner.Complete();
            }
        }

        public override void Advance(int bytes)
        {
            if (!Volatile.Read(ref _cut))
                inner.Advance(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => Volatile.Read(ref _cut) ? Sink(sizeHint) : inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => Volatile.Read(ref _cut) ? Sink(sizeHint) : inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
            Volatile.Read(ref _cut) ? new(new FlushResult(isCanceled: false, isCompleted: true)) : inner.FlushAsync(cancellationToken);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            lock (_lock)
            {
                if (!_cut)
                    inner.Complete(exception);
            }
        }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => Volatile.Read(ref _cut) ? 0 : inner.UnflushedBytes;

        private byte[] Sink(int sizeHint)
        {
            if (_sink.Length < Math.Max(sizeHint, 4096))
                _sink = new byte[Math.Max(sizeHint, 4096)];
            return _sink;
        }
    }
}
