using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Http;

/// <summary>
/// Writes JSON frames (NDJSON lines or SSE events) straight into the response pipe, one reused JSON writer per
/// stream; the caller flushes after each chunk so every token leaves at once.
/// </summary>
internal sealed class FrameWriter(HttpResponse response, string contentType)
{
    private Utf8JsonWriter? _json;

    public bool Started { get; private set; }

    public void Frame<T>(ReadOnlySpan<byte> prefix, T value, JsonTypeInfo<T> type, ReadOnlySpan<byte> suffix)
    {
        var body = Begin();
        body.Write(prefix);
        if (_json is null)
            _json = new Utf8JsonWriter(body, SimulatorJson.WriterOptions);
        else
            _json.Reset(body);
        JsonSerializer.Serialize(_json, value, type);
        _json.Flush();
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
