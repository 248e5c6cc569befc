using System.Buffers;

namespace Anteroom.Backends.Http;

/// <summary>A whole response body in one pooled buffer: the relay's single bodies and error bodies.</summary>
internal sealed class PooledBody : IDisposable
{
    private const int InitialBufferBytes = 4096;

    private byte[] _buffer = [];
    private int _length;

    /// <summary>What arrived, at most the limit; valid until disposal.</summary>
    public ReadOnlyMemory<byte> Bytes => _buffer.AsMemory(0, _length);

    /// <summary>Whether the body was read to its end rather than cut at the limit.</summary>
    public bool Complete { get; private set; }

    /// <summary>
    /// Reads the body up to <paramref name="maxBytes"/>. Transport failures and cancellation are thrown, leaving what
    /// arrived before them in <see cref="Bytes"/>. <paramref name="lengthHint"/> is the Content-Length, when known,
    /// so a large body is not grown into by doubling.
    /// </summary>
    public async ValueTask ReadAsync(Stream body, int maxBytes, long? lengthHint, CancellationToken cancellationToken)
    {
        // One byte over the announced length leaves room for the read that sees the end.
        _buffer = ArrayPool<byte>.Shared.Rent(lengthHint is > 0 and var length ? (int)Math.Min(length + 1, maxBytes) : InitialBufferBytes);
        while (true)
        {
            var capacity = Math.Min(_buffer.Length, maxBytes);
            if (_length == capacity)
            {
                if (capacity == maxBytes)
                {
                    // Full at the limit: the body is complete only if nothing follows.
                    Complete = await body.ReadAsync(new byte[1], cancellationToken).ConfigureAwait(false) == 0;
                    return;
                }

                var larger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, maxBytes));
                _buffer.AsSpan(0, _length).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = larger;
                continue;
            }

            var read = await body.ReadAsync(_buffer.AsMemory(_length, capacity - _length), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                Complete = true;
                return;
            }

            _length += read;
        }
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
