using System.Buffers;
using System.Runtime.CompilerServices;

namespace Anteroom.Backends.Http;

/// <summary>
/// Cuts a streaming response body into runs of whole frames, handed out as slices of one pooled buffer so the
/// relay copies nothing; the <see cref="IRelayFraming"/> says where frames end and what they mean.
/// </summary>
internal sealed class RelayFrameReader(Stream body, IRelayFraming framing) : IDisposable
{
    // Far above any token event; room for Ollama generate's final line, whose `context` grows with the context window.
    public const int MaxFrameBytes = 4 * 1024 * 1024;

    private const int InitialBufferBytes = 4096;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);

    // Everything before _start has been handed out; _start is always a frame boundary.
    private int _start;
    private int _end;
    private bool _streamEnded;

    // The backend's in-stream error, relayed already; once seen, it is how the stream ends, whatever follows.
    private string? _streamError;

    // Decided while the data before it still had to go out.
    private RelayChunk? _ending;

    /// <summary>Whether the backend is done with the request: the end marker or the body's end was read.</summary>
    public bool BackendFinished { get; private set; }

    /// <summary>
    /// The next run of whole frames, or the final chunk. Transport failures and cancellation are thrown for the
    /// caller to classify and hand to <see cref="Fail"/>. The previous data chunk's bytes are invalid once this is called.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<RelayChunk> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (TakeFrames() is { } data)
            {
                return data;
            }

            if (_ending is { } ending)
            {
                return ending;
            }

            if (_streamEnded)
            {
                if (TakeTail() is { } tail)
                {
                    return tail;
                }

                continue;
            }

            if (!MakeRoom())
            {
                _ending = Fail(new BackendError(BackendFailure.ProtocolViolation, $"A frame is longer than {MaxFrameBytes} bytes."));
                continue;
            }

            var read = await body.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                _streamEnded = true;
                BackendFinished = true;
            }

            _end += read;
        }
    }

    /// <summary>The final chunk for a failure met outside the frames: an in-stream error already relayed takes precedence.</summary>
    public RelayChunk Fail(BackendError error) => _streamError is null ? RelayChunk.Failed(error) : StreamErrorEnding();

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private RelayChunk? TakeFrames()
    {
        var batchStart = _start;
        var pieces = 0;
        while (_ending is null && framing.FindFrameEnd(_buffer.AsSpan(_start, _end - _start)) is > 0 and var length)
        {
            var verdict = framing.Inspect(_buffer.AsSpan(_start, length));
            if (verdict.Kind == FrameKind.Invalid)
            {
                // Not relayed: the client then has only whole frames of its protocol and the gateway can end the stream.
                _ending = Fail(new BackendError(BackendFailure.ProtocolViolation, verdict.Message!));
                break;
            }

            _start += length;
            pieces += verdict.ContentPieces;
            Note(verdict);
        }

        return _start > batchStart ? RelayChunk.Data(_buffer.AsMemory(batchStart, _start - batchStart), pieces) : null;
    }

    private RelayChunk? TakeTail()
    {
        var tailStart = _start;
        var verdict = framing.InspectTail(_buffer.AsSpan(_start, _end - _start));
        switch (verdict.Kind)
        {
            case FrameKind.End or FrameKind.Error:
                _start = _end;
                Note(verdict);
                // An error line is an ending too once nothing follows it.
                _ending ??= StreamErrorEnding();
                break;
            case FrameKind.Invalid:
                _ending = Fail(new BackendError(BackendFailure.ProtocolViolation, verdict.Message!));
                break;
            default:
                _ending = Fail(new BackendError(BackendFailure.Disconnected, verdict.Message!));
                break;
        }

        return _start > tailStart ? RelayChunk.Data(_buffer.AsMemory(tailStart, _start - tailStart), verdict.ContentPieces) : null;
    }

    private void Note(FrameVerdict verdict)
    {
        switch (verdict.Kind)
        {
            case FrameKind.Error:
                _streamError ??= verdict.Message;
                break;
            case FrameKind.End:
                // The backend is done with the request even when it reported an error before its end marker.
                BackendFinished = true;
                _ending = _streamError is null ? RelayChunk.Done(verdict.Usage, verdict.FinishReason) : StreamErrorEnding();
                break;
        }
    }

    private RelayChunk StreamErrorEnding() =>
        RelayChunk.Failed(new BackendError(BackendFailure.StreamError, _streamError!), errorWasRelayed: true);

    // False when the frame being read already fills the largest buffer allowed.
    private bool MakeRoom()
    {
        var pending = _end - _start;
        if (_start > 0)
        {
            // Only the unfinished frame moves; everything before it has been handed out and the consumer moved on.
            _buffer.AsSpan(_start, pending).CopyTo(_buffer);
            _start = 0;
            _end = pending;
        }

        if (_end < _buffer.Length)
        {
            return true;
        }

        if (pending >= MaxFrameBytes)
        {
            return false;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, MaxFrameBytes));
        _buffer.AsSpan(0, _end).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
        return true;
    }
}
