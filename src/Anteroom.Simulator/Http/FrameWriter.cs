using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Http;

/// <summary>
/// Writes JSON frames (NDJSON lines or SSE events) into the response pipe, one reused JSON writer and buffer per
/// stream; the caller flushes after each chunk so every token leaves at once.
/// </summary>
internal sealed class FrameWriter(HttpResponse response, string contentType)
{
    // The frame is serialized here first and then copied into the response. Serializing straight into the response
    // pipe is not safe: the JSON writer insists on a buffer of at least the size it asks for, and Kestrel's chunked
    // response writer may hand back less when nothing was written into the current chunk yet (an NDJSON line has no
    // prefix), so a long, fast Ollama stream failed mid-answer, the connection aborted. Copying writes into
    // whatever room the pipe offers.
    private readonly ArrayBufferWriter<byte> _frame = new(1024);
    private Utf8JsonWriter? _json;

    public bool Started { get; private set; }

    public void Frame<T>(ReadOnlySpan<byte> prefix, T value, JsonTypeInfo<T> type, ReadOnlySpan<byte> suffix)
    {
        _frame.ResetWrittenCount();
        if (_json is null)
            _json = new Utf8JsonWriter(_frame, SimulatorJson.WriterOptions);
        else
            _json.Reset(_frame);
        JsonSerializer.Serialize(_json, value, type);
        _json.Flush();

        var body = Begin();
        body.Write(prefix);
        body.Write(_frame.WrittenSpan);
        body.Write(suffix);
    }

    public void Raw(ReadOnlySpan<byte> bytes) => Begin().Write(bytes);

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var result = await response.BodyWriter.FlushAsync(cancellationToken);
        if (result.IsCanceled)
            throw new OperationCanceledException("The response was cancelled.", cancellationToken);
    }

    private IBufferWriter<byte> Begin()
    {
        if (!Started)
        {
            Started = true;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = contentType;
        }

        return response.BodyWriter;
    }
}
