using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Anteroom.Requests;

namespace Anteroom.Tests;

/// <summary>
/// A client that reads slower than the backend generates, or not at all, makes the gateway hold no more than its
/// stream buffer: it is cut off with a <c>slow_reader</c> error in its API's shape, and its request stops, so the
/// backend stops generating and the slot is free for others.
/// </summary>
public sealed class SlowReaderTests
{
    private const int Buffer = 64 * 1024;
    private const int AnswerTokens = 4_000;
    // About 4 MB of answer, far more than the stream buffer and the sockets' buffers between gateway and client.
    private const int TokenChars = 1_000;

    private static Task<TestGateway> StartAsync(int tokenChars)
    {
        var simulator = TestGateway.FastSimulator();
        // Drawn lengths stay within ±50 % of the mean: every answer is cut at exactly AnswerTokens by the ceiling.
        simulator.OutputTokens = 2 * AnswerTokens;
        // Two seconds for a whole answer: the stop reaches the backend long before that, however loaded the machine.
        simulator.TokensPerSecond = 2_000;
        simulator.TokenChars = tokenChars;
        return TestGateway.StartAsync(
            [new TestBackend("gpu", simulator)],
            new Dictionary<string, string?>
            {
                ["Anteroom:Stream:MaxBufferedBytes"] = Buffer.ToString(CultureInfo.InvariantCulture),
                ["Anteroom:Queue:MaxOutputTokens"] = AnswerTokens.ToString(CultureInfo.InvariantCulture),
            },
            socketSendBufferBytes: 4096);
    }

    [Theory]
    [InlineData("chat/stream", """{"message":"tell me everything"}""", "event: error\nid: ", "\"code\":\"slow_reader\"")]
    [InlineData("v1/chat/completions", """{"model":"llama3.1:8b","stream":true,"messages":[{"role":"user","content":"tell me everything"}]}""", "data: {\"error\":", "\"code\":\"slow_reader\"")]
    [InlineData("api/chat", """{"model":"llama3.1:8b","messages":[{"role":"user","content":"tell me everything"}]}""", "{\"error\":\"slow_reader: ", "\n")]
    public async Task AReaderThatStopsReading_IsCutOffWithASlowReaderErrorInItsApisShape_AndItsRequestStops(
        string path, string body, string errorStart, string errorPart)
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync(TokenChars);
        // The server holds at most this much of a response the client is not taking, on top of the stream buffer.
        gateway.KestrelLimits.MaxResponseBufferSize = 4096;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        byte[] json = Encoding.UTF8.GetBytes(body);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /{path} HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\n\r\n"), ct);
        await stream.WriteAsync(json, ct);

        // The head only; then nothing while the backend generates megabytes.
        string id = await RequestIdAsync(stream, ct);
        var request = (await gateway.Registry.GetAsync(id))!;
        var ending = await request.Ended.WaitAsync(ct);

        Assert.Equal("cancelled", ending.Name);
        Assert.Equal(LogFollower.SlowReader, request.StopReason);
        long kept = (await request.Events.GetWindowAsync(ct)).BufferedBytes;
        Assert.True(kept <= Buffer, $"{kept} bytes kept");
        // The backend was stopped, not left to finish an answer nobody can receive whole; the slot is free.
        var simulator = gateway.Simulator("gpu");
        await simulator.WaitUntilAsync(s => s.Active == 0, ct);
        Assert.True(simulator.Stats is { Cancelled: 1, Completed: 0, Failed: 0 }, simulator.Stats.ToString());
        // It generated what the buffers along the way held and what it made before the stop reached it — a few
        // hundred tokens on a quiet machine, more on a busy one — never the whole answer.
        Assert.True(simulator.Stats.TokensGenerated < AnswerTokens, simulator.Stats.ToString());
        await gateway.WaitForSchedulerAsync(s => s.Models.All(m => m.Running == 0 && m.Waiting == 0), ct);

        // Reading on, the client learns why its stream ended.
        string rest = await ReadToEndAsync(stream, ct);
        string tail = rest[^Math.Min(rest.Length, 2000)..];
        int error = tail.LastIndexOf(errorStart, StringComparison.Ordinal);
        Assert.True(error >= 0, tail);
        Assert.Contains(errorPart, tail[error..], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReconnectAskingForDroppedEvents_Gets410ReplayWindowExceeded()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync(TokenChars);
        gateway.KestrelLimits.MaxResponseBufferSize = 4096;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        byte[] json = """{"message":"tell me everything"}"""u8.ToArray();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /chat/stream HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\n\r\n"), ct);
        await stream.WriteAsync(json, ct);
        string id = await RequestIdAsync(stream, ct);
        await (await gateway.Registry.GetAsync(id))!.Ended.WaitAsync(ct);

        using var replay = await gateway.Client().GetAsync($"queue/requests/{id}/events", ct);

        Assert.Equal(HttpStatusCode.Gone, replay.StatusCode);
        Assert.Contains("replay_window_exceeded", await replay.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReaderThatKeepsUp_GetsTheWholeAnswer_ThoughItIsLongerThanTheStreamBuffer()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        // Plain words: some 100 KB of events, more than the buffer keeps, at a pace any reader keeps up with.
        await using var gateway = await StartAsync(tokenChars: 0);

        using var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hello" }, ct);
        var events = await stream.ReadToEndAsync(ct);

        Assert.True(events[^1].Type == "done", events[^1].Data.ToString());
        Assert.Equal(AnswerTokens, events.Count(e => e.Type == "token"));
        Assert.True((await (await gateway.Registry.GetAsync(stream.RequestId))!.Events.GetWindowAsync(ct)).FirstKeptId > 1, "the answer was longer than the buffer");
    }

    [Fact]
    public async Task ASecondReaderThatStopsReading_IsCutOffAlone_AndTheFirstGetsTheWholeAnswer()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await StartAsync(TokenChars);
        gateway.KestrelLimits.MaxResponseBufferSize = 4096;
        gateway.Simulator("gpu").Hold();
        using var first = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hello" }, ct);
        await first.ReadUntilAsync(ct, "started");
        // The second follows the same request from its start and never reads past the response head.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        await using var second = new NetworkStream(socket, ownsSocket: false);
        await second.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /queue/requests/{first.RequestId}/events HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nCookie: {gateway.Client("a").DefaultRequestHeaders.GetValues("Cookie").Single()}\r\n\r\n"), ct);
        await RequestIdAsync(second, ct);
        var request = (await gateway.Registry.GetAsync(first.RequestId))!;
        await WaitForFollowersAsync(request, 2, ct);
        gateway.Simulator("gpu").Release();

        var events = await first.ReadToEndAsync(ct);

        string secondRest = await ReadToEndAsync(second, ct);

        Assert.Equal("done", events[^1].Type);
        Assert.Equal(AnswerTokens, events.Count(e => e.Type == "token"));
        Assert.Equal(Anteroom.Scheduling.TicketOutcome.Completed, request.Ticket.Outcome);
        Assert.Contains("\"code\":\"slow_reader\"", secondRest[^Math.Min(secondRest.Length, 2000)..], StringComparison.Ordinal);
    }

    /// <summary>Waits until the request's log has this many readers; each reader's first read registers it.</summary>
    private static async Task WaitForFollowersAsync(LiveRequest request, int count, CancellationToken ct)
    {
        while (await request.Events.CountFollowersAsync(ct) < count)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), ct);
        }
    }

    private static async Task<string> RequestIdAsync(Stream stream, CancellationToken ct)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            Assert.Equal(1, await stream.ReadAsync(one, ct));
            head.Append((char)one[0]);
        }

        Assert.StartsWith("HTTP/1.1 200", head.ToString(), StringComparison.Ordinal);
        string line = head.ToString().Split("\r\n").Single(l => l.StartsWith("X-Request-Id:", StringComparison.OrdinalIgnoreCase));
        return line["X-Request-Id:".Length..].Trim();
    }

    /// <summary>Reads the chunked body up to its last chunk (the server keeps the connection open after it).</summary>
    private static async Task<string> ReadToEndAsync(Stream stream, CancellationToken ct)
    {
        var bytes = new MemoryStream();
        var chunk = new byte[64 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, ct)) > 0)
        {
            bytes.Write(chunk, 0, read);
            if (bytes.Length >= 5 && Encoding.ASCII.GetString(bytes.GetBuffer(), (int)bytes.Length - 5, 5) == "0\r\n\r\n")
            {
                break;
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
