using System.Text;
using Anteroom.Backends.Ollama;
using Anteroom.Backends.Tests.Fakes;

namespace Anteroom.Backends.Tests.Ollama;

public sealed class Utf8LineReaderTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task ReadLine_LinesSplitAcrossReads_ComeBackWhole(int seed)
    {
        var lines = await ReadAllAsync(new TricklingBody("first\nsecond line\r\n\nlast", seed));

        Assert.Equal(["first", "second line", "", "last"], lines);
    }

    [Fact]
    public async Task ReadLine_LineLongerThanTheFirstBuffer_GrowsTheBuffer()
    {
        var longLine = new string('a', 20_000);

        var lines = await ReadAllAsync(new MemoryStream(Encoding.UTF8.GetBytes($"{longLine}\nshort\n")));

        Assert.Equal([longLine, "short"], lines);
    }

    [Fact]
    public async Task ReadLine_LineOverTheLimit_Throws()
    {
        using var reader = new Utf8LineReader(new MemoryStream(new byte[10_000]), maxLineBytes: 8192);

        await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadLine_TextAfterTheLastNewline_IsFlaggedUnterminated()
    {
        using var reader = new Utf8LineReader(new MemoryStream("done\ncut"u8.ToArray()), maxLineBytes: 1024);

        await reader.ReadLineAsync(CancellationToken.None);
        Assert.False(reader.LastLineUnterminated);
        await reader.ReadLineAsync(CancellationToken.None);
        Assert.True(reader.LastLineUnterminated);
        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }

    [Fact]
    public async Task ReadLine_EmptyStream_ReturnsNull()
    {
        using var reader = new Utf8LineReader(new MemoryStream(), maxLineBytes: 1024);

        Assert.Null(await reader.ReadLineAsync(CancellationToken.None));
    }

    private static async Task<List<string>> ReadAllAsync(Stream stream)
    {
        using var reader = new Utf8LineReader(stream, maxLineBytes: 1024 * 1024);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
        {
            lines.Add(Encoding.UTF8.GetString(line.Span));
        }

        return lines;
    }
}
