using System.Net;
using System.Net.Http.Json;
using System.Text;

namespace Anteroom.Tests.DropIn;

/// <summary>Hand-made drop-in requests, for what no client library shows: raw lines, leaving mid-stream, exact bodies.</summary>
internal static class DropInHttp
{
    public static Task<HttpResponseMessage> OpenAIStreamAsync(HttpClient client, string model, CancellationToken cancellationToken) =>
        OpenStreamAsync(client, "v1/chat/completions", new { model, stream = true, messages = new[] { new { role = "user", content = "Go on and on." } } }, cancellationToken);

    public static Task<HttpResponseMessage> OllamaStreamAsync(HttpClient client, string model, CancellationToken cancellationToken) =>
        OpenStreamAsync(client, "api/chat", new { model, messages = new[] { new { role = "user", content = "Go on and on." } } }, cancellationToken);

    /// <summary>Posts and returns once the headers are in; fails unless the status is 200.</summary>
    public static async Task<HttpResponseMessage> OpenStreamAsync(HttpClient client, string path, object body, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            string text = await response.Content.ReadAsStringAsync(cancellationToken);
            response.Dispose();
            throw new HttpRequestException($"Expected 200 from {path} but got {(int)response.StatusCode}: {text}", null, response.StatusCode);
        }

        return response;
    }

    /// <summary>Reads lines until one satisfies <paramref name="isWanted"/>; fails if the stream ends first.</summary>
    public static async Task<string> ReadLineUntilAsync(StreamReader reader, Func<string, bool> isWanted, CancellationToken cancellationToken)
    {
        var seen = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (isWanted(line))
            {
                return line;
            }

            seen.AppendLine(line);
        }

        throw new InvalidOperationException($"The stream ended without the expected line. Read:\n{seen}");
    }
}

/// <summary>Keeps a copy of every response byte a client library reads, to show what it was given on the wire.</summary>
internal sealed class WireRecorder() : DelegatingHandler(new SocketsHttpHandler())
{
    private readonly MemoryStream _copy = new();

    public string Text
    {
        get
        {
            lock (_copy)
            {
                return Encoding.UTF8.GetString(_copy.ToArray());
            }
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        var original = response.Content;
        var copying = new StreamContent(new CopyingStream(await original.ReadAsStreamAsync(cancellationToken), _copy));
        foreach (var header in original.Headers)
        {
            copying.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        response.Content = copying;
        return response;
    }

    private sealed class CopyingStream(Stream inner, MemoryStream copy) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int read = inner.Read(buffer);
            Keep(buffer[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int read = await inner.ReadAsync(buffer, cancellationToken);
            Keep(buffer.Span[..read]);
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private void Keep(ReadOnlySpan<byte> bytes)
        {
            lock (copy)
            {
                copy.Write(bytes);
            }
        }
    }
}
