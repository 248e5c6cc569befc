using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Anteroom.Backends;
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
        HttpResponse response, IFollowedRequest request, long afterId, TimeSpan keepAlive, CancellationToken cancellationToken)
    {
        await response.StartAsync(cancellationToken);
        await LogFollower.FollowAsync(request, afterId, new NativeSink(response.BodyWriter), keepAlive, cancellationToken);
    }

    /// <summary>A sink writing native events into <paramref name="writer"/> (the per-token benchmark drives one).</summary>
    internal static IEventSink Sink(PipeWriter writer) => new NativeSink(writer);

    /// <summary>Token counts as the native API shows them.</summary>
    internal static UsageBody Usage(GenerationUsage usage) => new(usage.PromptTokens, usage.CompletionTokens, usage.TotalTokens);

    /// <summary>
    /// Writes a token's data exactly as <see cref="NativeJson"/> writes a <see cref="TokenEvent"/>, without the
    /// record: it is the one event per generated token.
    /// </summary>
    internal static void WriteToken(Utf8JsonWriter json, string text)
    {
        json.WriteStartObject();
        json.WriteString("text"u8, text);
        json.WriteString("type"u8, "token"u8);
        json.WriteEndObject();
    }

    private sealed class NativeSink(PipeWriter writer) : IEventSink
    {
        // Each event is serialized here first and then copied into the response. Serializing straight into the
        // response pipe is not safe: the JSON writer (like the event's head) insists on a buffer of at least the size
        // it asks for, and Kestrel's chunked response writer may hand back less, so a long, fast stream failed
        // mid-answer. Copying fills whatever room the pipe offers. One buffer and one JSON writer for the
        // connection, reused: a token allocates nothing here.
        private readonly ArrayBufferWriter<byte> _frame = new(1024);
        private Utf8JsonWriter? _jsonWriter;

        private Utf8JsonWriter Json => _jsonWriter ??= new Utf8JsonWriter(_frame);

        public ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
        {
            // Relayed drop-in bytes belong to their own API's stream, not to native events.
            if (streamEvent.Event is not RequestEvent.Relayed)
            {
                Write(streamEvent.Id, streamEvent.Event);
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
            Write(lastId, new RequestEvent.Error(code, message, null));

        /// <summary>event: &lt;name&gt;\nid: &lt;n&gt;\ndata: &lt;json&gt;\n\n — the JSON has no raw newlines, so one data line is enough.</summary>
        private void Write(long id, RequestEvent requestEvent)
        {
            string name = requestEvent.Name;
            _frame.ResetWrittenCount();
            // An ArrayBufferWriter, unlike the response pipe, gives at least the room asked for.
            var span = _frame.GetSpan(7 + name.Length + 5 + 20 + 7);
            int written = 0;
            Append(span, ref written, "event: "u8);
            written += Encoding.ASCII.GetBytes(name, span[written..]);
            Append(span, ref written, "\nid: "u8);
            id.TryFormat(span[written..], out int digits);
            written += digits;
            Append(span, ref written, "\ndata: "u8);
            _frame.Advance(written);

            var json = Json;
            json.Reset(_frame);
            WriteData(requestEvent);
            json.Flush();
            _frame.Write("\n\n"u8);
            writer.Write(_frame.WrittenSpan);
        }

        private void WriteData(RequestEvent requestEvent)
        {
            switch (requestEvent)
            {
                case RequestEvent.Token token:
                    WriteToken(Json, token.Text);
                    break;
                case RequestEvent.Queued queued:
                    JsonSerializer.Serialize(Json, new QueuedEvent(queued.RequestId, queued.Position, queued.QueueLength, queued.EtaMs), NativeJson.Default.QueuedEvent);
                    break;
                case RequestEvent.Started started:
                    JsonSerializer.Serialize(
                        Json, new StartedEvent(started.RequestId, started.Backend, started.Model, started.WaitedMs, started.Attempt), NativeJson.Default.StartedEvent);
                    break;
                case RequestEvent.Done done:
                    JsonSerializer.Serialize(Json, new DoneEvent(done.FinishReason, Usage(done.Usage), done.Timings), NativeJson.Default.DoneEvent);
                    break;
                case RequestEvent.Error error:
                    JsonSerializer.Serialize(Json, new ErrorEvent(error.Code, error.Message, error.RetryAfterMs), NativeJson.Default.ErrorEvent);
                    break;
                case RequestEvent.Cancelled cancelled:
                    JsonSerializer.Serialize(Json, new CancelledEvent(cancelled.Reason), NativeJson.Default.CancelledEvent);
                    break;
                default:
                    throw new InvalidOperationException($"The native API has no '{requestEvent.Name}' event.");
            }
        }
    }

    private static void Append(Span<byte> span, ref int written, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(span[written..]);
        written += bytes.Length;
    }
}
