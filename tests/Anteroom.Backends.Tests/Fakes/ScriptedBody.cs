using System.Text;
using System.Threading.Channels;

namespace Anteroom.Backends.Tests.Fakes;

/// <summary>
/// A response body the test feeds piece by piece. A read with nothing to return waits — for the next piece,
/// the end, a failure or cancellation — like a socket with a quiet server behind it.
/// </summary>
internal sealed class ScriptedBody : Stream
{
    private readonly Channel<byte[]> _pieces = Channel.CreateUnbounded<byte[]>();
    private readonly Lock _gate = new();
    private TaskCompletionSource _readWaiting = NewSignal();
    private byte[] _current = [];
    private int _offset;
    private volatile bool _disposed;

    public bool IsDisposed => _disposed;

    /// <summary>Completes once a read is waiting for data that has not been sent.</summary>
    public Task ReadWaiting
    {
        get
        {
            lock (_gate)
            {
                return _readWaiting.Task;
            }
        }
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public void Send(string text) => _pieces.Writer.TryWrite(Encoding.UTF8.GetBytes(text));

    public void End() => _pieces.Writer.TryComplete();

    /// <summary>Makes waiting and later reads throw, as a dropped connection does.</summary>
    public void Fail(Exception exception) => _pieces.Writer.TryComplete(exception);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_offset == _current.Length)
        {
            if (!_pieces.Reader.TryRead(out var next))
            {
                lock (_gate)
                {
                    _readWaiting.TrySetResult();
                }

                try
                {
                    if (!await _pieces.Reader.WaitToReadAsync(cancellationToken) || !_pieces.Reader.TryRead(out next))
                    {
                        return 0;
                    }
                }
                finally
                {
                    lock (_gate)
                    {
                        _readWaiting = NewSignal();
                    }
                }
            }

            _current = next;
            _offset = 0;
        }

        var count = Math.Min(buffer.Length, _current.Length - _offset);
        _current.AsMemory(_offset, count).CopyTo(buffer);
        _offset += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read asynchronously.");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        // A socket closed under a pending read fails that read.
        _pieces.Writer.TryComplete(new IOException("The connection was aborted."));
        base.Dispose(disposing);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
