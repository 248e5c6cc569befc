using System.Net;
using System.Text;
using System.Text.Json;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.Ollama;

public sealed partial class OllamaClientTests
{
    private const string GenerateHead = "{\"model\":\"llama3.1:8b\",\"created_at\":\"2025-01-01T00:00:00.000000Z\",\"response\":";

    private protected override string FrameTerminator => "\n";

    private protected override string EmbedPath => "/api/embed";

    private protected override string ChatBody(string text, string finishReason, GenerationUsage usage) =>
        $"{Head}{Json(text)}}},\"done_reason\":\"{finishReason}\",\"done\":true,\"total_duration\":513000000,\"load_duration\":12000000"
        + $",\"prompt_eval_count\":{usage.PromptTokens},\"prompt_eval_duration\":9000000"
        + $",\"eval_count\":{usage.CompletionTokens},\"eval_duration\":480000000}}";

    private protected override string EmbeddingsBody(int promptTokens, params float[][] vectors) =>
        $"{{\"model\":\"nomic-embed-text\",\"embeddings\":{JsonSerializer.Serialize(vectors)},\"total_duration\":14143917"
        + $",\"load_duration\":1019500,\"prompt_eval_count\":{promptTokens}}}";

    private static string GenerateEvent(string text) => $"{GenerateHead}{Json(text)},\"done\":false}}\n";

    private static string GenerateEnd(string finishReason, GenerationUsage usage) =>
        $"{GenerateHead}\"\",\"done\":true,\"done_reason\":\"{finishReason}\",\"context\":[128006,882,128007,271,13347]"
        + $",\"total_duration\":513000000,\"prompt_eval_count\":{usage.PromptTokens},\"eval_count\":{usage.CompletionTokens}}}\n";

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Relay_BlankLinesAndCrLf_AreRelayedVerbatimInWholeLines(int seed)
    {
        string[] frames = ["\n", TokenEvent("Hi").Replace("\n", "\r\n"), "  \r\n", "\n", EndEvents("stop", new(2, 1)).Replace("\n", "\r\n")];
        var wire = string.Concat(frames);
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, new TricklingBody(wire, seed), StreamMediaType));

        var chunks = await CollectAsync(client.RelayAsync(RelayChat()));

        Assert.Equal(wire, RelayedText(chunks));
        AssertWholeFrames(chunks, frames);
        Assert.Equal(1, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(2, 1), "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_FinalLineWithoutNewline_IsRelayedAndEndsTheStream()
    {
        var wire = TokenEvent("Hi") + EndEvents("stop", new(2, 1)).TrimEnd('\n');

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(RelayChunk.Done(new(2, 1), "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_DoneLineCarryingText_CountsAsAPiece()
    {
        var wire = $"{Head}\"Bye\"}},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":4,\"eval_count\":1}}\n";

        var chunks = await RelayAsync(wire);

        Assert.Equal(1, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(4, 1), "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_DoneWithoutCountsOrReason_HasNeither()
    {
        var chunks = await RelayAsync("{\"done\":true}\n");

        Assert.Equal(RelayChunk.Done(null, null), chunks[^1]);
    }

    [Fact]
    public async Task Relay_GenerateStream_CountsTheResponsePieces()
    {
        var wire = GenerateEvent("Once") + GenerateEvent(" upon") + GenerateEvent("") + GenerateEnd("length", new(3, 2));

        var chunks = await RelayAsync(wire, new RelayRequest("api/generate", "{}"u8.ToArray(), Streaming: true));

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(2, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(3, 2), "length"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_ErrorLineWithoutNewline_IsRelayedAndReportedAsAlreadyRelayed()
    {
        var wire = TokenEvent("Hi") + "{\"error\":\"model runner has unexpectedly stopped\"}";

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(
            RelayChunk.Failed(new BackendError(BackendFailure.StreamError, "model runner has unexpectedly stopped"), errorWasRelayed: true),
            chunks[^1]);
    }

    [Fact]
    public async Task Relay_LinesAfterAnError_AreRelayedToTheStreamsEnd()
    {
        var wire = TokenEvent("Hi") + StreamErrorEvent("out of memory") + "\n";

        var chunks = await RelayAsync(wire);

        Assert.Equal(wire, RelayedText(chunks));
        Assert.Equal(RelayChunk.Failed(new BackendError(BackendFailure.StreamError, "out of memory"), errorWasRelayed: true), chunks[^1]);
    }

    [Fact]
    public async Task Relay_SingleGenerateBody_IsDoneWithItsUsage()
    {
        var body = $"{GenerateHead}\"Once upon a time\",\"done\":true,\"done_reason\":\"stop\",\"context\":[1,2,3],\"prompt_eval_count\":3,\"eval_count\":4}}";
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, "application/json; charset=utf-8"));

        var chunks = await CollectAsync(client.RelayAsync(new RelayRequest("api/generate", "{\"stream\":false}"u8.ToArray(), Streaming: false)));

        Assert.Equal(body, RelayedText(chunks));
        Assert.Equal(4, chunks.Sum(chunk => chunk.ContentPieces));
        Assert.Equal(RelayChunk.Done(new(3, 4), "stop"), chunks[^1]);
    }

    [Fact]
    public async Task Relay_LineLongerThanTheFrameLimit_FailsProtocolViolation()
    {
        var chunks = await RelayAsync(new string('x', 4 * 1024 * 1024 + 10));

        Assert.Equal(2, chunks.Count);
        AssertRelayFailed(BackendFailure.ProtocolViolation, chunks[1]);
    }

    [Fact]
    public async Task Relay_EachLine_IsHandedOutAsSoonAsItsNewlineArrives()
    {
        var body = new ScriptedBody();
        body.Send(TokenEvent("Hi").TrimEnd('\n'));
        var client = CreateClient(FakeModelServer.Answering(HttpStatusCode.OK, body, StreamMediaType));
        await using var chunks = client.RelayAsync(RelayChat()).GetAsyncEnumerator();
        Assert.True(await chunks.MoveNextAsync());

        var next = chunks.MoveNextAsync();
        await body.ReadWaiting;
        Assert.False(next.IsCompleted);
        body.Send("\n" + TokenEvent(" there").TrimEnd('\n'));

        Assert.True(await next);
        Assert.Equal(TokenEvent("Hi"), Encoding.UTF8.GetString(chunks.Current.Bytes.Span));
    }
}
