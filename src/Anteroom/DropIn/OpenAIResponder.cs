using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Anteroom.Gateway;
using Anteroom.Native;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// Answers one admitted OpenAI request. Streaming: status and headers go out at once (the .NET SDK gives up after
/// 100 s without headers), then <c>: queued position=N eta_ms=M</c> comments while waiting, then the backend's own
/// bytes (same protocol) or translated chunks, and <c>data: [DONE]</c>. The stream never carries an <c>id:</c>
/// line, so the SDKs ignore every comment. Non-streaming: waits quietly and answers once.
/// </summary>
internal sealed class OpenAIResponder(HttpContext context, LiveRequest request, DropInDesk desk, OpenAIShape shape, OpenAIRequest parsed) : IEventSink
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] FrameEnd = "\n\n"u8.ToArray();
    private static readonly byte[] DoneFrame = "data: [DONE]\n\n"u8.ToArray();
    private static readonly byte[] KeepAlive = ": keep-alive\n\n"u8.ToArray();

    private readonly PipeWriter _writer = context.Response.BodyWriter;
    private readonly string _id = (shape == OpenAIShape.Chat ? "chatcmpl-" : "cmpl-") + request.Id[4..];
    private readonly long _created = request.CreatedAt.ToUnixTimeSeconds();
    private bool _roleSent;

    public async Task RespondAsync()
    {
        var aborted = context.RequestAborted;
        context.Response.Headers["X-Request-Id"] = request.Id;
        try
        {
            if (parsed.Stream)
            {
                var response = context.Response;
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "text/event-stream; charset=utf-8";
                response.Headers.CacheControl = "no-cache";
                response.Headers["X-Accel-Buffering"] = "no";
                await response.StartAsync(aborted);
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
            // The client left; detaching stopped the request and its backend call.
        }
    }

    public ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken)
    {
        switch (streamEvent.Type)
        {
            case "queued":
                var queued = JsonSerializer.Deserialize(streamEvent.Data, NativeJson.Default.QueuedEvent)!;
                WriteQueuedComment(queued.Position, queued.EtaMs);
                break;
            case "raw" when request.RelayedStatus is < 400:
                _writer.Write(streamEvent.Data);
                break;
            case "token":
                WriteData(Chunk(JsonSerializer.Deserialize(streamEvent.Data, NativeJson.Default.TokenEvent)!.Text, null, null));
                break;
            case "done" when request.RelayedStatus is null:
                WriteData(Chunk(null, request.FinishReason ?? "stop", null));
                if (parsed.IncludeUsage)
                {
                    WriteData(Chunk(null, null, Usage()));
                }

                _writer.Write(DoneFrame);
                break;
            case "error" when request.Failure is { RelayedToClient: true } && request.RelayedStatus is < 400:
                // The backend's own error event was relayed, and its [DONE] after it.
                break;
            case "error":
                WriteStreamError(request.Failure!.Message, request.Failure.Code);
                break;
            case "cancelled":
                WriteStreamError($"The request was cancelled ({request.StopReason}).", "cancelled");
                break;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask IdleAsync(CancellationToken cancellationToken)
    {
        if (desk.Scheduler.GetPlace(request.Ticket) is { } place)
        {
            WriteQueuedComment(place.Position, (long)place.EstimatedWait.TotalMilliseconds);
        }
        else
        {
            _writer.Write(KeepAlive);
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken) => await _writer.FlushAsync(cancellationToken);

    private void WriteQueuedComment(int position, long etaMs) =>
        _writer.Write(Encoding.ASCII.GetBytes($": queued position={position} eta_ms={etaMs}\n\n"));

    private void WriteStreamError(string message, string code)
    {
        WriteData(JsonSerializer.SerializeToUtf8Bytes(new OpenAIError(new OpenAIErrorDetail(message, "api_error", null, code)), OpenAIJson.Default.OpenAIError));
        _writer.Write(DoneFrame);
    }

    private void WriteData(byte[] json)
    {
        _writer.Write(DataPrefix);
        _writer.Write(json);
        _writer.Write(FrameEnd);
    }

    private byte[] Chunk(string? text, string? finishReason, OpenAIUsage? usage)
    {
        if (shape == OpenAIShape.Completion)
        {
            TextChoice[] textChoices = usage is null ? [new TextChoice(0, text ?? "", finishReason)] : [];
            return JsonSerializer.SerializeToUtf8Bytes(new TextCompletion(_id, _created, request.Ticket.Model, textChoices, usage), OpenAIJson.Default.TextCompletion);
        }

        ChunkChoice[] choices = [];
        if (usage is null)
        {
            // The first delta names the role, as OpenAI's own streams do.
            var delta = text is null ? new ChunkDelta(null, null) : new ChunkDelta(_roleSent ? null : "assistant", text);
            _roleSent |= text is not null;
            choices = [new ChunkChoice(0, delta, finishReason)];
        }

        return JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(_id, _created, request.Ticket.Model, choices, usage), OpenAIJson.Default.ChatCompletionChunk);
    }

    private OpenAIUsage Usage()
    {
        var usage = request.Usage;
        return new OpenAIUsage(usage?.PromptTokens ?? 0, usage?.CompletionTokens ?? 0, usage?.TotalTokens ?? 0);
    }

    private IResult Answer(string ending)
    {
        if (request.RelayedStatus is { } status)
        {
            return Results.Text(request.RelayedBytes(), request.RelayedContentType ?? "application/json", status);
        }

        string model = request.Ticket.Model;
        switch (ending)
        {
            case "done" when shape == OpenAIShape.Embedding:
                return Embeddings(model);
            case "done" when shape == OpenAIShape.Completion:
                return Results.Json(
                    new TextCompletion(_id, _created, model, [new TextChoice(0, request.Text.ToString(), request.FinishReason ?? "stop")], Usage()),
                    OpenAIJson.Default.TextCompletion);
            case "done":
                return Results.Json(
                    new ChatCompletion(_id, _created, model, [new MessageChoice(0, new AssistantMessage(request.Text.ToString()), request.FinishReason ?? "stop")], Usage()),
                    OpenAIJson.Default.ChatCompletion);
            case "cancelled":
                return OpenAIEndpoints.Error(StatusCodes.Status409Conflict, $"The request was cancelled ({request.StopReason}).", "api_error", null, "cancelled");
            default:
                var failure = request.Failure!;
                return RetryAfterResult.Wrap(OpenAIEndpoints.Error(failure.HttpStatus, failure.Message, "api_error", null, failure.Code), failure.RetryAfter);
        }
    }

    private IResult Embeddings(string model)
    {
        var vectors = request.Embeddings ?? [];
        var usage = new EmbeddingUsage(request.Usage?.PromptTokens ?? 0, request.Usage?.PromptTokens ?? 0);
        if (parsed.Base64Embeddings)
        {
            var encoded = vectors.Select((vector, index) => new Base64Embedding(Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())), index)).ToList();
            return Results.Json(new Base64EmbeddingList(encoded, model, usage), OpenAIJson.Default.Base64EmbeddingList);
        }

        var floats = vectors.Select((vector, index) => new FloatEmbedding(vector, index)).ToList();
        return Results.Json(new FloatEmbeddingList(floats, model, usage), OpenAIJson.Default.FloatEmbeddingList);
    }
}
