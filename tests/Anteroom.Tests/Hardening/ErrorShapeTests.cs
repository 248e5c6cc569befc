using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Hardening;

/// <summary>Errors the web server raises by itself (unknown routes, wrong methods, malformed bodies) come in the called API's shape.</summary>
public sealed class ErrorShapeTests
{
    [Theory]
    [InlineData("v1/no-such-thing", "openai")]
    [InlineData("api/no-such-thing", "ollama")]
    [InlineData("queue/no-such-thing/at/all", "native")]
    public async Task UnknownRoute_Gets404InTheApisShape(string path, string shape)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);

        using var response = await gateway.Client().GetAsync(path, ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        AssertShape(shape, await response.Content.ReadAsStringAsync(ct), "not_found");
    }

    [Theory]
    [InlineData("v1/chat/completions", "openai")]
    [InlineData("api/chat", "ollama")]
    [InlineData("chat/stream", "native")]
    public async Task WrongMethod_Gets405InTheApisShape_WithAllow(string path, string shape)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);

        using var response = await gateway.Client().GetAsync(path, ct);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow);
        AssertShape(shape, await response.Content.ReadAsStringAsync(ct), "method_not_allowed");
    }

    [Theory]
    [InlineData("v1/chat/completions", "openai")]
    [InlineData("api/chat", "ollama")]
    [InlineData("chat", "native")]
    public async Task MalformedChunkedBody_Gets400InTheApisShape(string path, string shape)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);

        // A chunk size that is not hexadecimal: the server itself rejects the body while the endpoint reads it.
        var (status, body) = await RawAsync(gateway, $"POST /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", ct);

        Assert.Equal(400, status);
        AssertShape(shape, body, "bad_request");
    }

    [Fact]
    public async Task BodySentTooSlowly_Gets408InTheApisShape()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        var limits = gateway.KestrelLimits;
        // The server's own clock judges the rate (it cannot be faked): the shortest grace Kestrel accepts keeps this brief.
        limits.MinRequestBodyDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(1000, TimeSpan.FromSeconds(1.5));

        // The body promises 1,000 bytes and sends 2, then nothing.
        var (status, body) = await RawAsync(gateway, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            "Content-Length: 1000\r\n\r\n{\"", ct);

        Assert.Equal(408, status);
        AssertShape("openai", body, "request_timeout");
    }

    private static void AssertShape(string shape, string body, string code)
    {
        using var document = JsonDocument.Parse(body);
        var error = document.RootElement.GetProperty("error");
        switch (shape)
        {
            case "ollama":
                Assert.False(string.IsNullOrWhiteSpace(error.GetString()));
                break;
            case "openai":
                Assert.Equal(code, error.GetProperty("code").GetString());
                Assert.EndsWith("_error", error.GetProperty("type").GetString(), StringComparison.Ordinal);
                Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
                break;
            default:
                Assert.Equal(code, error.GetProperty("code").GetString());
                Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
                break;
        }
    }

    /// <summary>Sends raw bytes, as a broken client would, and reads the status and body of the answer.</summary>
    private static async Task<(int Status, string Body)> RawAsync(TestGateway gateway, string request, CancellationToken ct)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.Address.Host, gateway.Address.Port, ct);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string statusLine = (await reader.ReadLineAsync(ct))!;
        int status = int.Parse(statusLine.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        long? length = null;
        bool chunked = false;
        for (string? line = await reader.ReadLineAsync(ct); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync(ct))
        {
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            {
                length = long.Parse(line[15..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }

            chunked |= line.Equals("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase);
        }

        if (!chunked)
        {
            var buffer = new char[length ?? 0];
            int read = 0;
            while (read < buffer.Length && await reader.ReadAsync(buffer.AsMemory(read), ct) is var n and > 0)
            {
                read += n;
            }

            return (status, new string(buffer, 0, read));
        }

        var body = new StringBuilder();
        for (string? size = await reader.ReadLineAsync(ct); size is not null && size != "0"; size = await reader.ReadLineAsync(ct))
        {
            body.Append(await reader.ReadLineAsync(ct));
        }

        return (status, body.ToString());
    }
}
