using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Anteroom.Requests;

namespace Anteroom.Native;

/// <summary>Writes a request's event log to a client as Server-Sent Events, following it live.</summary>
internal static class EventStream
{
    private static readonly byte[] KeepAlive = ": keep-alive\n\n"u8.ToArray();

    public static void PrepareHeaders(HttpResponse response, string requestId)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        response.Headers["X-Request-Id"] = requestId;
    }

    /// <summary>
    /// Sends the events after <paramref name="afterId"/> and every later one until the request ends or the client
    /// leaves, with a comment line whenever nothing was sent for <paramref name="keepAlive"/>.
    /// </summary>
    public static async Task FollowAsync(
        HttpResponse response, LiveRequest request, long afterId, TimeSpan keepAlive, TimeProvider time, CancellationToken cancellationToken)
    {
        await response.StartAsync(cancellationToken);
        await LogFollower.FollowAsync(request, afterId, new NativeSink(response.BodyWriter), keepAlive, time, cancellationToken);
    }

    private sealed class NativeSink(PipeWriter writer) : IEventSink
    {
        public ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
        {
            // Relayed drop-in bytes belong to their own API's stream, not to native events.
            if (streamEvent.Type != "raw")
            {
                Write(writer, streamEvent);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask IdleAsync(CancellationToken cancellationToken)
        {
            writer.Write(KeepAlive);
            return ValueTask.CompletedTask;
        }

        public async ValueTask<bool> FlushAsync(CancellationToken cancellationToken) => !(await writer.FlushAsync(cancellationToken)).IsCanceled;

        public void CancelFlush() => writer.CancelPendingFlush();

        public void WriteCutOff(long lastId, string code, string message) =>
            // The id of the last event given: a client that reconnects from it is told the rest is gone.
            Write(writer, new StreamEvent(lastId, "error", System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
                new ErrorEvent(code, message, null), NativeJson.Default.ErrorEvent)));
    }

    private static void Write(PipeWriter writer, StreamEvent streamEvent)
    {
        // event: <name>\nid: <n>\ndata: <json>\n\n — the JSON has no raw newlines, so one data line is enough.
        int size = 7 + Encoding.ASCII.GetMaxByteCount(streamEvent.Type.Length) + 5 + 20 + 7 + streamEvent.Data.Length + 2;
        var span = writer.GetSpan(size);
        int written = 0;
        Append(span, ref written, "event: "u8);
        written += Encoding.ASCII.GetBytes(streamEvent.Type, span[written..]);
        Append(span, ref written, "\nid: "u8);
        streamEvent.Id.TryFormat(span[written..], out int digits);
        written += digits;
        Append(span, ref written, "\ndata: "u8);
        Append(span, ref written, streamEvent.Data);
        Append(span, ref written, "\n\n"u8);
        writer.Advance(written);
    }

    private static void Append(Span<byte> span, ref int written, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(span[written..]);
        written += bytes.Length;
    }
}
