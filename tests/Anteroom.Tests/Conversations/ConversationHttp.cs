using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Anteroom.Tests;

/// <summary>The native API's calls as the conversation and access tests make them, checking the status on the way.</summary>
internal static class ConversationHttp
{
    public static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    /// <summary>The response's JSON body, after checking its status (the body is in the failure message).</summary>
    public static async Task<JsonElement> JsonAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken ct)
    {
        string body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.StatusCode == expected, $"Expected {(int)expected} but got {(int)response.StatusCode}: {body}");
        if (body.Length == 0)
        {
            return default;
        }

        using var document = JsonDocument.Parse(body);
        return document.RootElement.Clone();
    }

    public static async Task<JsonElement> SendAsync(HttpClient client, HttpMethod method, string path, HttpStatusCode expected, CancellationToken ct, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await client.SendAsync(request, ct);
        return await JsonAsync(response, expected, ct);
    }

    public static async Task<JsonElement> SendRawAsync(HttpClient client, HttpMethod method, string path, string body, HttpStatusCode expected, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, ct);
        return await JsonAsync(response, expected, ct);
    }

    /// <summary>Creates a conversation (with the default title when none is given) and returns it.</summary>
    public static Task<JsonElement> CreateAsync(HttpClient client, CancellationToken ct, string? title = null) =>
        title is null
            ? SendAsync(client, HttpMethod.Post, "conversations", HttpStatusCode.Created, ct)
            : SendAsync(client, HttpMethod.Post, "conversations", HttpStatusCode.Created, ct, new { title });

    public static Task<JsonElement> GetAsync(HttpClient client, string id, CancellationToken ct) =>
        SendAsync(client, HttpMethod.Get, $"conversations/{id}", HttpStatusCode.OK, ct);

    public static async Task<List<JsonElement>> ListAsync(HttpClient client, CancellationToken ct) =>
        [.. (await SendAsync(client, HttpMethod.Get, "conversations", HttpStatusCode.OK, ct)).GetProperty("conversations").EnumerateArray()];

    /// <summary>A non-streaming chat that must succeed; returns its result.</summary>
    public static Task<JsonElement> ChatAsync(HttpClient client, object body, CancellationToken ct) =>
        SendAsync(client, HttpMethod.Post, "chat", HttpStatusCode.OK, ct, body);

    public static int PromptTokens(JsonElement chatResult) => chatResult.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();

    public static string Id(JsonElement element) => element.GetProperty("id").GetString()!;

    public static string Text(JsonElement element, string property) => element.GetProperty(property).GetString()!;

    public static List<JsonElement> Messages(JsonElement conversation) => [.. conversation.GetProperty("messages").EnumerateArray()];

    /// <summary>The native error's code and field (null when it names none).</summary>
    public static (string Code, string? Field) Error(JsonElement body)
    {
        var error = body.GetProperty("error");
        return (error.GetProperty("code").GetString()!, error.TryGetProperty("field", out var field) ? field.GetString() : null);
    }
}
