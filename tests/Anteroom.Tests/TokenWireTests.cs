using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.DropIn;
using Anteroom.Identity;
using Anteroom.Native;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests;

/// <summary>
/// The token path writes its JSON by hand, straight into the response; these prove it writes the very bytes the
/// wire records' serializers write, for texts that need escaping too.
/// </summary>
public sealed class TokenWireTests
{
    public static TheoryData<string> Texts => new()
    {
        "hello",
        "",
        " \"quoted\" and \\ back",
        "<b>&amp;</b> it's +1",
        "été, 日本語, 😀",
        "line\nbreak\ttab\u0001\u007f",
        "line\u2028separator\u2029paragraph",
        "lone \ud83d high surrogate",
        "\ud83d",
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void ANativeToken_IsWrittenAsTheTokenEventRecordSerializes(string text)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            EventStream.WriteToken(json, text);
        }

        Assert.Equal(
            Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(new TokenEvent(text), NativeJson.Default.TokenEvent)),
            Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public async Task AnOpenAIChatToken_IsWrittenAsTheChunkRecordSerializes_WithTheRoleOnlyInTheFirst(string text)
    {
        var (request, sink, pipe) = OpenAI(OpenAIShape.Chat);
        string id = "chatcmpl-" + request.Id[4..];
        long created = request.CreatedAt.ToUnixTimeSeconds();

        await sink.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);
        await sink.WriteAsync(new StreamEvent(2, new RequestEvent.Token(text)), default);

        Assert.Equal(
            Frame(new ChatCompletionChunk(id, created, "m", [new ChunkChoice(0, new ChunkDelta("assistant", text), null)], null))
                + Frame(new ChatCompletionChunk(id, created, "m", [new ChunkChoice(0, new ChunkDelta(null, text), null)], null)),
            await Written(sink, pipe));
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public async Task AnOpenAICompletionToken_IsWrittenAsTheTextCompletionRecordSerializes(string text)
    {
        var (request, sink, pipe) = OpenAI(OpenAIShape.Completion);

        await sink.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);

        var expected = new TextCompletion("cmpl-" + request.Id[4..], request.CreatedAt.ToUnixTimeSeconds(), "m", [new TextChoice(0, text, null)], null);
        Assert.Equal(
            "data: " + Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(expected, OpenAIJson.Default.TextCompletion)) + "\n\n",
            await Written(sink, pipe));
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public async Task AnOllamaToken_IsWrittenAsTheChunkRecordsSerialize_ApostrophesAndAllAsOllamaWritesThem(string text)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 1, 12, 30, 45, TimeSpan.Zero).AddTicks(1234567));
        var (request, context, pipe) = Request();
        // The desk's queue, pool and reception serve other answers; a token needs only its clock.
        var desk = new DropInDesk(null!, null!, null!, Options.Create(new AnteroomOptions()), time);
        string createdAt = OllamaResponder.Timestamp(time.GetUtcNow());
        var chat = new OllamaResponder(context, request, desk, OllamaShape.Chat, stream: true);

        await chat.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);

        Assert.Equal(
            Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(
                new OllamaChatChunk("m", createdAt, new OllamaMessage("assistant", text), false), OllamaJson.Wire.OllamaChatChunk)) + "\n",
            await Written(chat, pipe));

        var (_, generateContext, generatePipe) = Request();
        var generate = new OllamaResponder(generateContext, request, desk, OllamaShape.Generate, stream: true);
        await generate.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);
        Assert.Equal(
            Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(
                new OllamaGenerateChunk("m", createdAt, text, false), OllamaJson.Wire.OllamaGenerateChunk)) + "\n",
            await Written(generate, generatePipe));
    }

    /// <summary>
    /// A lone surrogate (a token cut inside a pair) does not throw: every sink writes it as the escaped replacement
    /// character, and the line and paragraph separators escaped, so the frame stays valid JSON on one line.
    /// </summary>
    [Fact]
    public async Task ALoneSurrogate_IsWrittenAsTheEscapedReplacementChar_AndSeparatorsEscaped_ByEverySink()
    {
        const string text = "a\ud83db\u2028\u2029";
        const string expected = "\"a\\uFFFDb\\u2028\\u2029\"";

        var native = new Pipe();
        var nativeSink = EventStream.Sink(native.Writer);
        await nativeSink.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);
        Assert.Equal("event: token\nid: 1\ndata: {\"text\":" + expected + ",\"type\":\"token\"}\n\n", await Written(nativeSink, native));

        var (_, openAI, openAIPipe) = OpenAI(OpenAIShape.Chat);
        await openAI.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);
        Assert.Contains("\"content\":" + expected + "}", await Written(openAI, openAIPipe), StringComparison.Ordinal);

        var (request, context, ollamaPipe) = Request();
        var desk = new DropInDesk(null!, null!, null!, Options.Create(new AnteroomOptions()), new FakeTimeProvider());
        var ollama = new OllamaResponder(context, request, desk, OllamaShape.Chat, stream: true);
        await ollama.WriteAsync(new StreamEvent(1, new RequestEvent.Token(text)), default);
        string line = await Written(ollama, ollamaPipe);
        Assert.Contains("\"content\":" + expected + "}", line, StringComparison.Ordinal);
        Assert.EndsWith("}\n", line, StringComparison.Ordinal);
        Assert.Single(line.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>
    /// Kestrel's chunked response writer may hand back less room than asked for; every sink's frames still go out
    /// whole and byte for byte as through a writer that gives all it is asked, instead of the JSON writer throwing.
    /// </summary>
    [Fact]
    public async Task EverySink_WritesWholeFrames_ThroughAResponseThatGivesLessRoomThanAsked()
    {
        const string text = "a token long enough to need more room than a few bytes, \"escaped\" and été";

        async Task<string> Through(Func<PipeWriter, (IEventSink Sink, Pipe Pipe)> make, bool stingy)
        {
            var pipe = new Pipe();
            var (sink, _) = make(stingy ? new StingyWriter(pipe.Writer) : pipe.Writer);
            for (int i = 1; i <= 20; i++)
            {
                await sink.WriteAsync(new StreamEvent(i, new RequestEvent.Token(text)), default);
            }

            return await Written(sink, pipe);
        }

        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 1, 12, 30, 45, TimeSpan.Zero));
        var desk = new DropInDesk(null!, null!, null!, Options.Create(new AnteroomOptions()), time);
        var (request, _, _) = Request();
        Func<PipeWriter, (IEventSink, Pipe)>[] sinks =
        [
            writer => (EventStream.Sink(writer), null!),
            writer => (new OpenAIResponder(Context(writer), request, null!, OpenAIShape.Chat, new OpenAIRequest(request.Generation, true, false, null, false)), null!),
            writer => (new OllamaResponder(Context(writer), request, desk, OllamaShape.Chat, stream: true), null!),
        ];
        foreach (var make in sinks)
        {
            string expected = await Through(make, stingy: false);
            Assert.Equal(expected, await Through(make, stingy: true));
        }
    }

    private static HttpContext Context(PipeWriter writer)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new PipeBody(writer));
        return context;
    }

    /// <summary>A response writer that never gives more than a few bytes of room, whatever it is asked for.</summary>
    private sealed class StingyWriter(PipeWriter inner) : PipeWriter
    {
        private const int Room = 7;

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint)[..Room];

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint)[..Room];

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
    }

    private static string Frame(ChatCompletionChunk chunk) =>
        "data: " + Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(chunk, OpenAIJson.Default.ChatCompletionChunk)) + "\n\n";

    private static (LiveRequest Request, IEventSink Sink, Pipe Pipe) OpenAI(OpenAIShape shape)
    {
        var (request, context, pipe) = Request();
        // The desk serves only keep-alives and queue comments, which tokens never reach.
        var sink = new OpenAIResponder(context, request, null!, shape, new OpenAIRequest(request.Generation, true, false, null, false));
        return (request, sink, pipe);
    }

    /// <summary>A request for model <c>m</c>, and a response whose body is a pipe.</summary>
    private static (LiveRequest Request, HttpContext Context, Pipe Pipe) Request()
    {
        var queue = RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])]);
        // The in-process queue admits synchronously.
        var ticket = queue.AdmitAsync(new TicketRequest { Id = "req_0123456789abcdef", Owner = "user", Model = "m" }).GetAwaiter().GetResult().Ticket!;
        var generation = new GenerationRequest { Model = "m", Messages = [] };
        var caller = new Caller("user", "user", TierOptions.DefaultName, new TierOptions(), null, false, false);
        var request = new LiveRequest(ticket, new Arrival(caller, generation), TimeProvider.System);
        var pipe = new Pipe();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new PipeBody(pipe.Writer));
        return (request, context, pipe);
    }

    private static async Task<string> Written(IEventSink sink, Pipe pipe)
    {
        await sink.FlushAsync(default);
        await pipe.Writer.CompleteAsync();
        var read = await pipe.Reader.ReadAsync();
        return Encoding.UTF8.GetString(read.Buffer.ToArray());
    }

    private sealed class PipeBody(PipeWriter writer) : IHttpResponseBodyFeature
    {
        public Stream Stream => throw new NotSupportedException();

        public PipeWriter Writer => writer;

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => Task.CompletedTask;
    }
}
