using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// Answers one admitted Ollama Request. Streaming: <c>application/x-ndjson</c> headers go out at once, then
/// nothing until the first real chunk — NDJSON has no comments, and the client libraries parse every line — then
/// the backend's own lines (same protocol) or translated ones, and always a final <c>done:true</c> line or
/// Ollama's own <c>{"error": …}</c> line. Non-streaming: waits quietly and answers once.
/// </summary>
internal sealed class OllamaResponder(HttpContext context, LiveRequest request, DropInDesk desk, OllamaShape shape, bool stream)
    : DropInResponder(context, request, desk, stream)
{
    private const long NanosecondsPerMillisecond = 1_000_000;
    private const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";
    private const int TimestampLength = 28;
    private static readonly byte[] NewLine = "\n"u8.ToArray();
    // As OllamaJson.Wire writes text: Ollama leaves apostrophes and the like unescaped.
    private static readonly JsonWriterOptions WireWriting = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    // Each token's line is serialized here first and then copied into the response. Serializing straight into the
    // response pipe is not safe: the JSON writer insists on a buffer of at least the size it asks for, and Kestrel's
    // chunked response writer may hand back less, so a long, fast stream failed mid-answer. Copying fills whatever
    // room the pipe offers. One buffer for the stream, reused: a token allocates nothing.
    private readonly ArrayBufferWriter<byte> _line = new(1024);
    private Utf8JsonWriter? _jsonWriter;

    /// <summary>RFC 3339 in UTC with fractional seconds, as Ollama writes <c>created_at</c>.</summary>
    public static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture);

    /// <summary>One JSON writer for the stream, writing into the line buffer.</summary>
    private Utf8JsonWriter JsonWriter => _jsonWriter ??= new Utf8JsonWriter(_line, WireWriting);

    protected override void PrepareStream(HttpResponse response) => response.ContentType = "application/x-ndjson";

    public override ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
    {
        switch (streamEvent.Event)
        {
            case RequestEvent.Relayed relayed when Request.RelayedStatus is < 400:
                Writer.Write(relayed.Bytes);
                break;
            case RequestEvent.Token token:
                WriteTokenLine(token.Text);
                break;
            case RequestEvent.Done when Request.RelayedStatus is null:
                WriteLine(Final(""));
                break;
            case RequestEvent.Error when Request.Failure is { RelayedToClient: true } && Request.RelayedStatus is < 400:
                break;
            case RequestEvent.Error:
                WriteLine(JsonSerializer.SerializeToUtf8Bytes(new OllamaErrorBody(Request.Failure!.Message), OllamaJson.Wire.OllamaErrorBody));
                break;
            case RequestEvent.Cancelled:
                WriteLine(JsonSerializer.SerializeToUtf8Bytes(new OllamaErrorBody($"request cancelled ({Request.StopReason})"), OllamaJson.Wire.OllamaErrorBody));
                break;
        }

        return ValueTask.CompletedTask;
    }

    public override ValueTask IdleAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Ollama's own error line; relayed chunks end on whole lines, so it starts a line of its own.</summary>
    public override void WriteCutOff(long lastId, string code, string message) =>
        WriteLine(JsonSerializer.SerializeToUtf8Bytes(new OllamaErrorBody($"{code}: {message}"), OllamaJson.Wire.OllamaErrorBody));

    /// <summary>
    /// One token's line, serialized into the reused line buffer and copied into the response, exactly as <see cref="OllamaJson.Wire"/> writes the
    /// <see cref="OllamaChatChunk"/> (or <see cref="OllamaGenerateChunk"/>) for it: it is the one line per generated
    /// token, so it allocates nothing.
    /// </summary>
    private void WriteTokenLine(string text)
    {
        Span<char> createdAt = stackalloc char[TimestampLength];
        Desk.Time.GetUtcNow().UtcDateTime.TryFormat(createdAt, out int length, TimestampFormat, CultureInfo.InvariantCulture);
        _line.ResetWrittenCount();
        var json = JsonWriter;
        json.Reset(_line);
        json.WriteStartObject();
        json.WriteString("model"u8, Request.Ticket.Model);
        json.WriteString("created_at"u8, createdAt[..length]);
        if (shape == OllamaShape.Chat)
        {
            json.WriteStartObject("message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, text);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("response"u8, text);
        }

        json.WriteBoolean("done"u8, false);
        json.WriteEndObject();
        json.Flush();
        _line.Write(NewLine);
        Writer.Write(_line.WrittenSpan);
    }

    private void WriteLine(byte[] json)
    {
        Writer.Write(json);
        Writer.Write(NewLine);
    }

    /// <summary>The closing object: the whole text when not streaming, the timings in nanoseconds either way.</summary>
    private byte[] Final(string text)
    {
        string model = Request.Ticket.Model;
        string createdAt = Timestamp(Desk.Time.GetUtcNow());
        var timings = Request.Timings;
        long total = (timings?.TotalMs ?? 0) * NanosecondsPerMillisecond;
        long promptEval = (timings?.TimeToFirstTokenMs ?? 0) * NanosecondsPerMillisecond;
        long eval = (timings?.GenerationMs ?? 0) * NanosecondsPerMillisecond - promptEval;
        int promptTokens = Request.Usage?.PromptTokens ?? 0;
        int outputTokens = Request.Usage?.CompletionTokens ?? 0;
        string reason = Request.FinishReason ?? "stop";
        return shape == OllamaShape.Chat
            ? JsonSerializer.SerializeToUtf8Bytes(
                new OllamaChatFinal(model, createdAt, new OllamaMessage("assistant", text), true, reason, total, 0, promptTokens, promptEval, outputTokens, Math.Max(eval, 0)),
                OllamaJson.Wire.OllamaChatFinal)
            : JsonSerializer.SerializeToUtf8Bytes(
                new OllamaGenerateFinal(model, createdAt, text, true, reason, [], total, 0, promptTokens, promptEval, outputTokens, Math.Max(eval, 0)),
                OllamaJson.Wire.OllamaGenerateFinal);
    }

    protected override IResult Answer(RequestEnding ending)
    {
        if (Request.RelayedStatus is { } status)
        {
            return new RelayedAnswer(Request, Request.RelayedContentType ?? "application/json; charset=utf-8", status);
        }

        switch (ending)
        {
            case RequestEvent.Done when shape == OllamaShape.Embed:
                var vectors = Request.Embeddings ?? [];
                var timings = Request.Timings;
                return Results.Json(
                    new OllamaEmbedResult(Request.Ticket.Model, vectors, (timings?.TotalMs ?? 0) * NanosecondsPerMillisecond, 0, Request.Usage?.PromptTokens ?? 0),
                    OllamaJson.Wire.OllamaEmbedResult);
            case RequestEvent.Done when shape == OllamaShape.LegacyEmbedding:
                return Results.Json(new OllamaLegacyEmbedding(Request.Embeddings is [var first, ..] ? first : []), OllamaJson.Wire.OllamaLegacyEmbedding);
            case RequestEvent.Done:
                return Results.Bytes(Final(Request.Text.ToString()), "application/json; charset=utf-8");
            case RequestEvent.Cancelled:
                return OllamaEndpoints.Error(StatusCodes.Status409Conflict, $"request cancelled ({Request.StopReason})");
            default:
                var failure = Request.Failure!;
                // Not Ollama's own 500: the failure is a backend's (502) or the queue's (503), and a 500 would say
                // Anteroom itself broke. Ollama's clients read the error text whatever the status.
                return RetryAfterResult.Wrap(OllamaEndpoints.Error(failure.HttpStatus, failure.Message), failure.RetryAfter);
        }
    }
}
