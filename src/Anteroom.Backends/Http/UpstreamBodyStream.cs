using System.Runtime.CompilerServices;

namespace Anteroom.Backends.Http;

/// <summary>
/// The response body as the chunk readers see it. Runs the call's idle timer only while a read waits for the
/// backend, so "stalled" means "no bytes arrived", whatever the protocol and however the bytes split into lines;
/// and can close the connection at once when the call is abandoned.
/// </summary>
/// <remarks>Disposing it leaves the inner stream alone: the response owns that.</remarks>
internal sealed class UpstreamBodyStream(Stream inner, UpstreamCall call) : Stream
{
    private const int Idle = 0;
    private const int Reading = 1;
    private const int Closed = 2;

    // Enough to get past what the handler and the socket have buffered; beyond it, the handler's bounded drain takes over.
    private const int MaxReadsToClose = 64;

    private int _state;
    private volatile bool _closeRequested;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        switch (Interlocked.CompareExchange(ref _state, Reading, Idle))
        {
            case Closed:
                throw new OperationCanceledException("The call to the backend was abandoned.", cancellationToken);
            case Reading:
                throw new InvalidOperationException("The body is already being read.");
        }

        call.ArmIdleTimer();
        try
        {
            return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            call.DisarmIdleTimer();
            // A full fence before looking at the flag, paired with the one in CloseConnectionNow: either that sees
            // Idle and closes, or this sees the flag and does.
            Interlocked.CompareExchange(ref _state, Idle, Reading);
            if (_closeRequested)
            {
                CloseConnectionNow();
            }
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("Model-server bodies are read asynchronously.");

    /// <summary>
    /// Closes the connection instead of leaving it to be drained for reuse. SocketsHttpHandler drains a disposed
    /// HTTP/1.1 response for up to two seconds (<c>ResponseDrainTimeout</c>) and the backend keeps generating all
    /// that time; cancelling a pending read is the only public way to make it close the connection at once.
    /// </summary>
    /// <returns>False when a read is running: the connection then closes when that read ends, not before.</returns>
    public bool CloseConnectionNow()
    {
        _closeRequested = true;
        switch (Interlocked.CompareExchange(ref _state, Closed, Idle))
        {
            case Reading:
                // The read's cancellation closes the connection, or its exit comes back here.
                return false;
            case Closed:
                return true;
        }

        // Not pooled: a cancelled read may still write into it after we return.
        var scratch = new byte[4096];
        using var cancel = new CancellationTokenSource();
        for (var i = 0; i < MaxReadsToClose; i++)
        {
            ValueTask<int> read;
            try
            {
                read = inner.ReadAsync(scratch, cancel.Token);
            }
            catch (Exception ex) when (IsConnectionGone(ex))
            {
                return true;
            }

            if (!read.IsCompleted)
            {
                cancel.Cancel();
                _ = ObserveAsync(read);
                return true;
            }

            try
            {
                if (read.GetAwaiter().GetResult() == 0)
                {
                    return true;
                }
            }
            catch (Exception ex) when (IsConnectionGone(ex))
            {
                return true;
            }
        }

        return true;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private static bool IsConnectionGone(Exception exception) =>
        exception is IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException;

    // The read fails because we cancelled it; that is the point, not news.
    private static async Task ObserveAsync(ValueTask<int> read)
    {
        try
        {
            await read.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionGone(ex))
        {
        }
    }
}
