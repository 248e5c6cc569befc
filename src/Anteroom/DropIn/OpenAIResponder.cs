using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// Answers one admitted OpenAI Request. Streaming: status and headers go out at once (the .NET SDK gives up after
/// 100 s without headers), then <c>: queued position=N eta_ms=M</c> comments while waiting, then the backend's own
/// bytes (same protocol) or translated chunks, and <c>data: [DONE]</c>. The stream never carries an <c>id:</c>
/// line, so the SDKs ignore every comment. Non-streaming: waits quietly and answers once.
/// </summary>
internal sealed class OpenAIResponder(HttpContext context, LiveRequest request, DropInDesk desk, OpenAIShape shape, OpenAIRequest parsed)
    : DropInResponder(context, request, desk, parsed.Stream)
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] FrameEnd = "\n\n"u8.ToArray();
    private static readonly byte[] DoneFrame = "data: [DONE]\n\n"u8.ToArray();
    private static readonly byte[] KeepAlive = ": keep-alive\n\n"u8.ToArray();

    private readonly string _id = (shape == OpenAIShape.Chat ? "chatcmpl-" : "cmpl-") + request.Id[4..];
    private readonly long _created = request.CreatedAt.ToUnixTimeSeconds();
    private bool _roleSent;
    // Each token's event is serialized here first and then copied into the response. Serializing straight into the
    // response pipe is not safe: the JSON writer insists on a buffer of at least the size it asks for, and Kestrel's
    // chunked response writer may hand back less, so a long, fast stream failed mid-answer. Copying fills whatever
    // room the pipe offers. One buffer for the stream, reused: a token allocates nothing.
    private readonly ArrayBufferWriter<byte> _frame = new(1024);
    private Utf8JsonWriter? _jsonWriter;

    /// <summary>One JSON writer for the stream, writing into the frame buffer.</summary>
    private Utf8JsonWriter JsonWriter => _jsonWriter ??= new Utf8JsonWriter(_frame);

    protected override void PrepareStream(HttpResponse response)
    {
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public override ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
    {
        switch (streamEvent.Event)
        {
            case RequestEvent.Queued queued:
                WriteQueuedComment(queued.Position, queued.EtaMs);
                break;
            case RequestEvent.Relayed relayed when Request.RelayedStatus is < 400:
                Writer.Write(relayed.Bytes);
                break;
            case RequestEvent.Token token:
                WriteTokenChunk(token.Text);
                break;
            case RequestEvent.Done when Request.RelayedStatus is null:
                WriteData(Chunk(null, Request.FinishReason ?? "stop", null));
                if (parsed.IncludeUsage)
                {
                    WriteData(Chunk(null, null, Usage()));
                }

                Writer.Write(DoneFrame);
                break;
            case RequestEvent.Error when Request.Failure is { RelayedToClient: true } && Request.RelayedStatus is < 400:
                // The backend's own error event was relayed, and its [DONE] after it.
                break;
            case RequestEvent.Error:
                WriteStreamError(Request.Failure!.Message, Request.Failure.Code);
                break;
            case RequestEvent.Cancelled:
                WriteStreamError($"The request was cancelled ({Request.StopReason}).", "cancelled");
                break;
        }

        return ValueTask.CompletedTask;
    }

    public override async ValueTask IdleAsync(CancellationToken cancellationToken)
    {
        if (await Desk.Queue.GetPlaceAsync(Request.Id, cancellationToken) is { } place)
        {
            WriteQueuedComment(place.Position, (long)place.EstimatedWait.TotalMilliseconds);
        }
        else
        {
            Writer.Write(KeepAlive);
        }
    }

    /// <summary>An error event and [DONE], as a failed stream ends; relayed chunks end on whole events.</summary>
    public override void WriteCutOff(long lastId, string code, string message) => WriteStreamError(message, code);

    private void WriteQueuedComment(int position, long etaMs) =>
        Writer.Write(Encoding.ASCII.GetBytes($": queued position={position} eta_ms={etaMs}\n\n"));

    private void WriteStreamError(string message, string code)
    {
        WriteData(JsonSerializer.SerializeToUtf8Bytes(new OpenAIError(new OpenAIErrorDetail(message, "api_error", null, code)), OpenAIJson.Default.OpenAIError));
        Writer.Write(DoneFrame);
    }

    /// <summary>
    /// One token's chunk, serialized into the reused frame buffer and copied into the response, exactly as <see cref="OpenAIJson"/> writes the
    /// <see cref="ChatCompletionChunk"/> (or <see cref="TextCompletion"/>) that <see cref="Chunk"/> would build: it is
    /// the one chunk per generated token, so it allocates nothing.
    /// </summary>
    private void WriteTokenChunk(string text)
    {
        _frame.ResetWrittenCount();
        _frame.Write(DataPrefix);
        var json = JsonWriter;
        json.Reset(_frame);
        json.WriteStartObject();
        json.WriteString("id"u8, _id);
        json.WriteNumber("created"u8, _created);
        json.WriteString("model"u8, Request.Ticket.Model);
        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteNumber("index"u8, 0);
        if (shape == OpenAIShape.Completion)
        {
            json.WriteString("text"u8, text);
        }
        else
        {
            json.WriteStartObject("delta"u8);
            if (!_roleSent)
            {
                // The first delta names the role, as OpenAI's own streams do.
                json.WriteString("role"u8, "assistant"u8);
                _roleSent = true;
            }

            json.WriteString("content"u8, text);
            json.WriteEndObject();
        }

        json.WriteNull("finish_reason"u8);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("object"u8, shape == OpenAIShape.Completion ? "text_completion"u8 : "chat.completion.chunk"u8);
        json.WriteEndObject();
        json.Flush();
        _frame.Write(FrameEnd);
        Writer.Write(_frame.WrittenSpan);
    }

    private void WriteData(byte[] json)
    {
        Writer.Write(DataPrefix);
        Writer.Write(json);
        Writer.Write(FrameEnd);
    }

    private byte[] Chunk(string? text, string? finishReason, OpenAIUsage? usage)
    {
        if (shape == OpenAIShape.Completion)
        {
            TextChoice[] textChoices = usage is null ? [new TextChoice(0, text ?? "", finishReason)] : [];
            return JsonSerializer.SerializeToUtf8Bytes(new TextCompletion(_id, _created, Request.Ticket.Model, textChoices, usage), OpenAIJson.Default.TextCompletion);
        }

        ChunkChoice[] choices = [];
        if (usage is null)
        {
            // The first delta names the role, as OpenAI's own streams do.
            var delta = text is null ? new ChunkDelta(null, null) : new ChunkDelta(_roleSent ? null : "assistant", text);
            _roleSent |= text is not null;
            choices = [new ChunkChoice(0, delta, finishReason)];
        }

        return JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(_id, _created, Request.Ticket.Model, choices, usage), OpenAIJson.Default.ChatCompletionChunk);
    }

    private OpenAIUsage Usage()
    {
        var usage = Request.Usage;
        return new OpenAIUsage(usage?.PromptTokens ?? 0, usage?.CompletionTokens ?? 0, usage?.TotalTokens ?? 0);
    }

    protected override IResult Answer(RequestEnding ending)
    {
        if (Request.RelayedStatus is { } status)
        {
            return new RelayedAnswer(Request, Request.RelayedContentType ?? "application/json", status);
        }

        string model = Request.Ticket.Model;
        switch (ending)
        {
            case RequestEvent.Done when shape == OpenAIShape.Embedding:
                return Embeddings(model);
            case RequestEvent.Done when shape == OpenAIShape.Completion:
                return Results.Json(
                    new TextCompletion(_id, _created, model, [new TextChoice(0, Request.Text.ToString(), Request.FinishReason ?? "stop")], Usage()),
                    OpenAIJson.Default.TextCompletion);
            case RequestEvent.Done:
                return Results.Json(
                    new ChatCompletion(_id, _created, model, [new MessageChoice(0, new AssistantMessage(Request.Text.ToString()), Request.FinishReason ?? "stop")], Usage()),
                    OpenAIJson.Default.ChatCompletion);
            case RequestEvent.Cancelled:
                return OpenAIEndpoints.Error(StatusCodes.Status409Conflict, $"The request was cancelled ({Request.StopReason}).", "api_error", null, "cancelled");
            default:
                var failure = Request.Failure!;
                return RetryAfterResult.Wrap(OpenAIEndpoints.Error(failure.HttpStatus, failure.Message, "api_error", null, failure.Code), failure.RetryAfter);
        }
    }

    private IResult Embeddings(string model)
    {
        var vectors = Request.Embeddings ?? [];
        var usage = new EmbeddingUsage(Request.Usage?.PromptTokens ?? 0, Request.Usage?.PromptTokens ?? 0);
        if (parsed.Base64Embeddings)
        {
            var encoded = vectors.Select((vector, index) => new Base64Embedding(Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())), index)).ToList();
            return Results.Json(new Base64EmbeddingList(encoded, model, usage), OpenAIJson.Default.Base64EmbeddingList);
        }

        var floats = vectors.Select((vector, index) => new FloatEmbedding(vector, index)).ToList();
        return Results.Json(new FloatEmbeddingList(floats, model, usage), OpenAIJson.Default.FloatEmbeddingList);
    }
}
