using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Anteroom.Tests;

/// <summary>One server-sent event as a client sees it.</summary>
internal sealed record SseEvent(string Type, long? Id, JsonElement Data)
{
    public string Text(string property) => Data.GetProperty(property).GetString()!;

    public int Int(string property) => Data.GetProperty(property).GetInt32();
}

/// <summary>Reads a native event stream line by line, as a browser or curl would.</summary>
internal sealed class SseStream : IDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseStream(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _reader = new StreamReader(body, Encoding.UTF8);
    }

    public HttpResponseMessage Response => _response;

    public string RequestId => _response.Headers.GetValues("X-Request-Id").Single();

    public List<string> Comments { get; } = [];

    public static Task<SseStream> ChatAsync(HttpClient client, object body, CancellationToken cancellationToken) =>
        OpenAsync(client, new HttpRequestMessage(HttpMethod.Post, "chat/stream") { Content = JsonContent.Create(body) }, cancellationToken);

    public static async Task<SseStream> OpenAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            string body = await response.Content.ReadAsStringAsync(cancellationToken);
            response.Dispose();
            throw new HttpRequestException($"Expected 200 but got {(int)response.StatusCode}: {body}", null, response.StatusCode);
        }

        return new SseStream(response, await response.Content.ReadAsStreamAsync(cancellationToken));
    }

    /// <summary>The next event, or null at the end of the stream.</summary>
    public async Task<SseEvent?> NextAsync(CancellationToken cancellationToken)
    {
        string? type = null;
        long? id = null;
        var data = new StringBuilder();
        while (await _reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    using var document = JsonDocument.Parse(data.ToString());
                    return new SseEvent(type ?? "message", id, document.RootElement.Clone());
                }

                continue;
            }

            if (line.StartsWith(':'))
            {
                Comments.Add(line);
                continue;
            }

            int colon = line.IndexOf(':');
            string field = colon < 0 ? line : line[..colon];
            string value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event": type = value; break;
                case "id": id = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "data": data.Append(value); break;
            }
        }

        return null;
    }

    /// <summary>Reads lines until a comment line arrives; fails if an event comes first.</summary>
    public async Task<string> NextCommentAsync(CancellationToken cancellationToken)
    {
        while (await _reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith(':'))
            {
                Comments.Add(line);
                return line;
            }

            if (line.Length > 0)
            {
                throw new InvalidOperationException($"Expected a comment but read '{line}'.");
            }
        }

        throw new InvalidOperationException("The stream ended without a comment.");
    }

    /// <summary>Reads until the first event of one of the given types, returning everything read.</summary>
    public async Task<List<SseEvent>> ReadUntilAsync(CancellationToken cancellationToken, params string[] types)
    {
        var events = new List<SseEvent>();
        while (await NextAsync(cancellationToken) is { } next)
        {
            events.Add(next);
            if (types.Contains(next.Type))
            {
                return events;
            }
        }

        throw new InvalidOperationException($"The stream ended without any of: {string.Join(", ", types)}. Read: {string.Join(", ", events.Select(e => e.Type))}");
    }

    public Task<List<SseEvent>> ReadToEndAsync(CancellationToken cancellationToken) =>
        ReadUntilAsync(cancellationToken, "done", "error", "cancelled");

    /// <summary>Drops the connection, as a client that leaves does.</summary>
    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
    }
}
