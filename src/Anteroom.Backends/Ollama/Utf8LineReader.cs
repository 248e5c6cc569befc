using System.Buffers;
using System.Runtime.CompilerServices;

namespace Anteroom.Backends.Ollama;

/// <summary>
/// Splits a byte stream into lines without decoding it: lines come back as slices of one pooled buffer,
/// so the JSON parser reads UTF-8 straight from the socket's bytes and nothing is allocated per line.
/// </summary>
internal sealed class Utf8LineReader(Stream stream, int maxLineBytes) : IDisposable
{
    private const int InitialBufferBytes = 4096;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
    private int _lineStart;
    private int _end;

    // How many bytes after _lineStart are known to hold no '\n', so a long line is scanned once, not once per read.
    private int _scanned;
    private bool _streamEnded;

    /// <summary>Whether the last line returned was cut off by the end of the stream rather than ended by '\n'.</summary>
    public bool LastLineUnterminated { get; private set; }

    /// <summary>
    /// The next line without its "\n" or "\r\n", valid until the next call; null at the end of the stream.
    /// Throws <see cref="InvalidDataException"/> for a line longer than the limit.
    /// </summary>
    public ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken cancellationToken) =>
        TryTakeLine(out var line) ? new(line) : ReadMoreAsync(cancellationToken);

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadOnlyMemory<byte>?> ReadMoreAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_streamEnded)
            {
                return TakeTail();
            }

            MakeRoom();
            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                _streamEnded = true;
            }

            _end += read;
            if (TryTakeLine(out var line))
            {
                return line;
            }
        }
    }

    private bool TryTakeLine(out ReadOnlyMemory<byte> line)
    {
        var unscanned = _buffer.AsSpan(_lineStart + _scanned, _end - _lineStart - _scanned);
        var newline = unscanned.IndexOf((byte)'\n');
        if (newline < 0)
        {
            _scanned = _end - _lineStart;
            line = default;
            return false;
        }

        var length = _scanned + newline;
        line = WithoutCarriageReturn(_buffer.AsMemory(_lineStart, length));
        _lineStart += length + 1;
        _scanned = 0;
        return true;
    }

    private ReadOnlyMemory<byte>? TakeTail()
    {
        if (_lineStart == _end)
        {
            return null;
        }

        var tail = WithoutCarriageReturn(_buffer.AsMemory(_lineStart, _end - _lineStart));
        _lineStart = _end;
        _scanned = 0;
        LastLineUnterminated = true;
        return tail;
    }

    private void MakeRoom()
    {
        var pending = _end - _lineStart;
        if (_lineStart > 0)
        {
            // Only the unfinished line moves; everything before it has been handed out.
            _buffer.AsSpan(_lineStart, pending).CopyTo(_buffer);
            _lineStart = 0;
            _end = pending;
        }

        if (_end < _buffer.Length)
        {
            return;
        }

        if (pending >= maxLineBytes)
        {
            throw new InvalidDataException($"A line is longer than {maxLineBytes} bytes.");
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, maxLineBytes));
        _buffer.AsSpan(0, _end).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    private static ReadOnlyMemory<byte> WithoutCarriageReturn(ReadOnlyMemory<byte> line) =>
        line.Span is [.., (byte)'\r'] ? line[..^1] : line;
}
