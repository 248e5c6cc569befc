using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Tests.DropIn;

namespace Anteroom.Tests.Access;

/// <summary>Gateways configured for identity tests, and short ways to read each API's error.</summary>
internal static class AccessGateway
{
    /// <summary>A gateway in front of one backend of each protocol, with the given settings (keys mode by default).</summary>
    public static Task<TestGateway> StartWithAccessAsync(IDictionary<string, string?>? settings = null, bool keysMode = true, Action<Simulator.SimulatorOptions>? simulator = null)
    {
        var all = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>());
        if (keysMode)
        {
            all.TryAdd("Anteroom:Auth:Mode", "keys");
        }

        return DropInGateway.StartAsync(all, simulator);
    }

    public static object ChatBody(string model, string text = "hi") => new { model, messages = new[] { new { role = "user", content = text } } };

    /// <summary>The <c>error.code</c> of a native or OpenAI error body.</summary>
    public static async Task<string?> ErrorCodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return body.RootElement.GetProperty("error").GetProperty("code").GetString();
    }

    /// <summary>The <c>error</c> object of a native or OpenAI error body, or Ollama's <c>error</c> string.</summary>
    public static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return body.RootElement.GetProperty("error").Clone();
    }

    /// <summary>A request through each API: native chat, OpenAI chat completions, Ollama chat (not streamed).</summary>
    public static async Task<(HttpResponseMessage Native, HttpResponseMessage OpenAI, HttpResponseMessage Ollama)> EachApiAsync(
        HttpClient client, string model, CancellationToken cancellationToken)
    {
        var messages = new[] { new { role = "user", content = "hi" } };
        return (
            await client.PostAsJsonAsync("chat", new { model, message = "hi" }, cancellationToken),
            await client.PostAsJsonAsync("v1/chat/completions", new { model, messages }, cancellationToken),
            await client.PostAsJsonAsync("api/chat", new { model, messages, stream = false }, cancellationToken));
    }
}
