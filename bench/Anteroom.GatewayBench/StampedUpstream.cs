using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Anteroom.GatewayBench;

/// <summary>
/// An OpenAI-compatible upstream that answers at once: a fixed completion, or a stream of <c>--tokens</c> chunks
/// sent as fast as it can, each flushed on its own. Every streamed token's text is <c>ts{N}z </c>, where N is
/// <see cref="Stopwatch.GetTimestamp"/> when the chunk was written: on Linux the monotonic clock in nanoseconds,
/// which every process on the machine shares, so a client can tell how long the token took to reach it.
/// </summary>
internal static class StampedUpstream
{
    public const string StampPrefix = "ts";
    public const char StampEnd = 'z';

    private static readonly byte[] Models = Encoding.UTF8.GetBytes("""{"object":"list","data":[{"id":"stamped","object":"model","created":0,"owned_by":"bench"}]}""");

    private static readonly byte[] Completion = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"stamped","choices":[{"index":0,"message":{"role":"assistant","content":"A fixed answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":4,"total_tokens":12}}""");

    private static readonly byte[] ChunkStart = Encoding.UTF8.GetBytes(
        """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"stamped","choices":[{"index":0,"delta":{"role":"assistant","content":"ts""");

    private static readonly byte[] ChunkEnd = Encoding.UTF8.GetBytes("z \"},\"finish_reason\":null}]}\n\n");

    private static readonly byte[] Finish = Encoding.UTF8.GetBytes(
        """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"stamped","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""" + "\n\n");

    private static readonly byte[] Done = Encoding.UTF8.GetBytes("data: [DONE]\n\n");

    public static async Task<int> RunAsync(Arguments arguments)
    {
        int port = arguments.Number("port", 0);
        int tokens = arguments.Number("tokens", 100);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        app.MapGet("/v1/models", (HttpContext context) => WriteJsonAsync(context, Models));
        app.MapPost("/v1/chat/completions", (HttpContext context) => AnswerAsync(context, tokens));
        await app.RunAsync();
        return 0;
    }

    private static async Task WriteJsonAsync(HttpContext context, byte[] json)
    {
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        await context.Response.Body.WriteAsync(json);
    }

    private static async Task AnswerAsync(HttpContext context, int tokens)
    {
        bool stream;
        using (var body = await JsonDocument.ParseAsync(context.Request.Body))
        {
            stream = body.RootElement.TryGetProperty("stream", out var flag) && flag.ValueKind == JsonValueKind.True;
        }

        if (!stream)
        {
            await WriteJsonAsync(context, Completion);
            return;
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var writer = response.BodyWriter;
        for (int i = 0; i < tokens; i++)
        {
            var span = writer.GetSpan(ChunkStart.Length + 20 + ChunkEnd.Length);
            ChunkStart.CopyTo(span);
            int length = ChunkStart.Length;
            Utf8Formatter.TryFormat(Stopwatch.GetTimestamp(), span[length..], out int digits);
            length += digits;
            ChunkEnd.CopyTo(span[length..]);
            writer.Advance(length + ChunkEnd.Length);
            await writer.FlushAsync(context.RequestAborted);
        }

        writer.Write(Finish);
        writer.Write(Done);
        await writer.FlushAsync(context.RequestAborted);
    }
}
