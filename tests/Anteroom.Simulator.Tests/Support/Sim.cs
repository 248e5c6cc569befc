using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Anteroom.Simulator.Tests.Support;

/// <summary>Starting fast simulators and talking to them over real HTTP.</summary>
internal static class Sim
{
    public const string Model = "llama3.1:8b";

    /// <summary>Timings fast enough for tests: a stream of eight tokens takes a few milliseconds.</summary>
    public static SimulatorOptions Fast(Action<SimulatorOptions>? configure = null)
    {
        var options = new SimulatorOptions { TtftMs = 1, TokensPerSecond = 2000, OutputTokens = 8 };
        configure?.Invoke(options);
        return options;
    }

    public static Task<SimulatedModelServer> StartAsync(Action<SimulatorOptions>? configure = null, TimeProvider? time = null) =>
        SimulatedModelServer.StartAsync(Fast(configure), timeProvider: time);

    /// <summary>A client that closes, rather than drains, a connection whose response it stops reading, as a leaving user does.</summary>
    public static HttpClient Client(SimulatedModelServer server) =>
        new(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.BaseAddress };

    /// <summary>A safety net so a broken build fails instead of hanging; tests never wait on it for their logic.</summary>
    public static CancellationToken Deadline() => new CancellationTokenSource(TimeSpan.FromSeconds(15)).Token;

    public static Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string json, CancellationToken cancellationToken) =>
        client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json")) },
            HttpCompletionOption.ResponseHeadersRead,
            cancellationToken);

    public static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    public static async Task<JsonElement> JsonAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
        Json(await response.Content.ReadAsStringAsync(cancellationToken));

    /// <summary>Every line of an NDJSON body, checking the framing: newline-terminated, no blank lines, each a JSON object.</summary>
    public static async Task<List<JsonElement>> NdjsonAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.EndsWith("\n", body, StringComparison.Ordinal);
        var lines = body[..^1].Split('\n');
        Assert.All(lines, line => Assert.False(string.IsNullOrWhiteSpace(line)));
        return lines.Select(Json).ToList();
    }

    public static string Chat(string model = Model, bool? stream = null, int? numPredict = null, string content = "Hello there, simulator!")
    {
        var streamPart = stream is { } s ? $",\"stream\":{(s ? "true" : "false")}" : "";
        var optionsPart = numPredict is { } n ? $",\"options\":{{\"num_predict\":{n}}}" : "";
        return $"{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":{JsonSerializer.Serialize(content)}}}]{streamPart}{optionsPart}}}";
    }

    public static string OpenAIChat(string model = Model, bool stream = false, string extra = "") =>
        $"{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello there, simulator!\"}}],\"stream\":{(stream ? "true" : "false")}{extra}}}";
}
