using Anteroom.Backends;
using Anteroom.Requests;

namespace Anteroom.Tests;

public sealed class RequestEventCodecTests
{
    /// <summary>Every kind of event, with its optional parts present and absent, and text that is not plain ASCII.</summary>
    private static readonly RequestEvent[] Examples =
    [
        new RequestEvent.Queued("req_1", 3, 12, 4500),
        new RequestEvent.Queued("", 0, 0, 0),
        new RequestEvent.Started("req_1", "gpu-a", "llama3", 1200, 2),
        new RequestEvent.Token("Grüße, 世界 🌍"),
        new RequestEvent.Token(""),
        new RequestEvent.Token(new string('x', 100_000)),
        new RequestEvent.Relayed([0, 1, 2, 255, 10, 13]),
        new RequestEvent.Relayed([]),
        new RequestEvent.Done("stop", new GenerationUsage(12, 345), new TimingsBody(10, 250, 3000, 3260, 42.5)),
        new RequestEvent.Done("length", new GenerationUsage(0, 0), new TimingsBody(0, null, 0, 0, null)),
        new RequestEvent.Error("backend_error", "upstream said no", 1500),
        new RequestEvent.Error("timeout", "too slow", null),
        new RequestEvent.Cancelled("cancelled_by_user"),
        new RequestEvent.Done("stop", new GenerationUsage(int.MaxValue, 1), new TimingsBody(long.MaxValue, long.MaxValue, 1, 2, double.Epsilon)),
    ];

    public static TheoryData<int> ExampleIndexes() => [.. Enumerable.Range(0, Examples.Length)];

    [Theory]
    [MemberData(nameof(ExampleIndexes))]
    public void AnEvent_DecodesToWhatWasEncoded(int example)
    {
        var original = Examples[example];
        var decoded = RequestEventCodec.Decode(RequestEventCodec.Encode(original));

        if (original is RequestEvent.Relayed relayed)
        {
            Assert.Equal(relayed.Bytes, Assert.IsType<RequestEvent.Relayed>(decoded).Bytes);
        }
        else
        {
            Assert.Equal(original, decoded);
        }
    }

    [Fact]
    public void TheExamples_CoverEveryKindOfEvent()
    {
        var kinds = typeof(RequestEvent).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(RequestEvent)) && !t.IsAbstract)
            .ToHashSet();

        Assert.Equal(kinds, Examples.Select(e => e.GetType()).ToHashSet());
    }

    [Fact]
    public void AToken_CostsItsTextAndTwoBytes()
    {
        Assert.Equal(7, RequestEventCodec.Encode(new RequestEvent.Token("hello")).Length);
    }

    [Fact]
    public void ABufferReusedForSeveralEvents_EncodesEachOnItsOwn()
    {
        var buffer = new MemoryStream();
        var longer = RequestEventCodec.Encode(new RequestEvent.Token("a much longer token"), buffer);
        var shorter = RequestEventCodec.Encode(new RequestEvent.Token("ab"), buffer);

        Assert.Equal(new RequestEvent.Token("ab"), RequestEventCodec.Decode(shorter));
        Assert.Equal(new RequestEvent.Token("a much longer token"), RequestEventCodec.Decode(longer));
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 99 })]
    [InlineData(new byte[] { 3, 10, 65 })]
    [InlineData(new byte[] { 7, 1, 65, 0 })]
    public void BytesThatAreNoEvent_AreRefusedAsMalformed(byte[] bytes)
    {
        Assert.Throws<FormatException>(() => RequestEventCodec.Decode(bytes));
    }
}
