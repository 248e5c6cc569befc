using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Native;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// Answers one admitted Ollama request. Streaming: <c>application/x-ndjson</c> headers go out at once, then
/// nothing until the first real chunk — NDJSON has no comments, and the client libraries parse every line — then
/// the backend's own lines (same protocol) or translated ones, and always a final <c>done:true</c> line or
/// Ollama's own <c>{"error": …}</c> line. Non-streaming: waits quietly and answers once.
/// </summary>
internal sealed class OllamaResponder(HttpContext context, LiveRequest request, DropInDesk desk, OllamaShape shape, bool stream) : IEventSink
{
    private const long NanosecondsPerMillisecond = 1_000_000;
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    private readonly PipeWriter _writer = context.Response.BodyWriter;

    /// <summary>RFC 3339 in UTC with fractional seconds, as Ollama writes <c>created_at</c>.</summary>
    public static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    public async Task RespondAsync()
    {
        var aborted = context.RequestAborted;
        context.Response.Headers["X-Request-Id"] = request.Id;
        try
        {
            if (stream)
            {
                context.Response.StatusCode = StatusCodes.Status200OK;
                context.Response.ContentType = "application/x-ndjson";
                await context.Response.StartAsync(aborted);
                // The idle interval only paces the follower: Ollama streams carry nothing while waiting.
                await LogFollower.FollowAsync(request, 0, this, desk.KeepAlive, desk.Time, aborted);
                return;
            }

            RequestEnding ending;
            using (request.Attach())
            {
                ending = await request.Ended.WaitAsync(aborted);
            }

            await Answer(ending.Type).ExecuteAsync(context);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException && aborted.IsCancellationRequested)
        {
            // The client left; detaching stopped the request and its backend call, as Ollama does.
        }
    }

    public ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
    {
        switch (streamEvent.Type)
        {
            case "raw" when request.RelayedStatus is < 400:
                _writer.Write(streamEvent.Data);
                break;
            case "token":
                var text = JsonSerializer.Deserialize(streamEvent.Data, NativeJson.Default.TokenEvent)!.Text;
                WriteLine(shape == OllamaShape.Chat
                    ? JsonSerializer.SerializeToUtf8Bytes(new OllamaChatChunk(request.Ticket.Model, Timestamp(desk.Time.GetUtcNow()), new OllamaMessage("assistant", text), false), OllamaJson.Wire.OllamaChatChunk)
                    : JsonSerializer.SerializeToUtf8Bytes(new OllamaGenerateChunk(request.Ticket.Model, Timestamp(desk.Time.GetUtcNow()), text, false), OllamaJson.Wire.OllamaGenerateChunk));
                break;
            case "done" when request.RelayedStatus is null:
                WriteLine(Final(""));
                break;
            case "error" when request.Failure is { RelayedToClient: true } && request.RelayedStatus is < 400:
                break;
            case "error":
                WriteLine(JsonSerializer.SerializeToUtf8Bytes(new OllamaErrorBody(request.Failure!.Message), OllamaJson.Wire.OllamaErrorBody));
                break;
            case "cancelled":
                WriteLine(JsonSerializer.SerializeToUtf8Bytes(new OllamaErrorBody($"request cancelled ({request.StopReason})"), OllamaJson.Wire.OllamaErrorBody));
                break;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask IdleAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public async ValueTask FlushAsync(CancellationToken cancellationToken) => await _writer.FlushAsync(cancellationToken);

    private void WriteLine(byte[] json)
    {
        _writer.Write(json);
        _writer.Write(NewLine);
    }

    /// <summary>The closing object: the whole text when not streaming, the timings in nanoseconds either way.</summary>
    private byte[] Final(string text)
    {
        string model = request.Ticket.Model;
        string createdAt = Timestamp(desk.Time.GetUtcNow());
        var timings = request.Timings;
        long total = (timings?.TotalMs ?? 0) * NanosecondsPerMillisecond;
        long promptEval = (timings?.TimeToFirstTokenMs ?? 0) * NanosecondsPerMillisecond;
        long eval = (timings?.GenerationMs ?? 0) * NanosecondsPerMillisecond - promptEval;
        int promptTokens = request.Usage?.PromptTokens ?? 0;
        int outputTokens = request.Usage?.CompletionTokens ?? 0;
        string reason = request.FinishReason ?? "stop";
        return shape == OllamaShape.Chat
            ? JsonSerializer.SerializeToUtf8Bytes(
                new OllamaChatFinal(model, createdAt, new OllamaMessage("assistant", text), true, reason, total, 0, promptTokens, promptEval, outputTokens, Math.Max(eval, 0)),
                OllamaJson.Wire.OllamaChatFinal)
            : JsonSerializer.SerializeToUtf8Bytes(
                new OllamaGenerateFinal(model, createdAt, text, true, reason, [], total, 0, promptTokens, promptEval, outputTokens, Math.Max(eval, 0)),
                OllamaJson.Wire.OllamaGenerateFinal);
    }

    private IResult Answer(string ending)
    {
        if (request.RelayedStatus is { } status)
        {
            return Results.Text(request.RelayedBytes(), request.RelayedContentType ?? "application/json; charset=utf-8", status);
        }

        switch (ending)
        {
            case "done" when shape == OllamaShape.Embed:
                var vectors = request.Embeddings ?? [];
                var timings = request.Timings;
                return Results.Json(
                    new OllamaEmbedResult(request.Ticket.Model, vectors, (timings?.TotalMs ?? 0) * NanosecondsPerMillisecond, 0, request.Usage?.PromptTokens ?? 0),
                    OllamaJson.Wire.OllamaEmbedResult);
            case "done" when shape == OllamaShape.LegacyEmbedding:
                return Results.Json(new OllamaLegacyEmbedding(request.Embeddings is [var first, ..] ? first : []), OllamaJson.Wire.OllamaLegacyEmbedding);
            case "done":
                return Results.Bytes(Final(request.Text.ToString()), "application/json; charset=utf-8");
            case "cancelled":
                return OllamaEndpoints.Error(StatusCodes.Status409Conflict, $"request cancelled ({request.StopReason})");
            default:
                var failure = request.Failure!;
                // Ollama answers 500 for any failure of its own; only a timeout is the queue's 503.
                int failureStatus = failure.Code == "timeout" ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status500InternalServerError;
                return RetryAfterResult.Wrap(OllamaEndpoints.Error(failureStatus, failure.Message), failure.RetryAfter);
        }
    }
}
