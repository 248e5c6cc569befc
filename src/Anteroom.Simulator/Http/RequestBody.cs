using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Http;

/// <summary>A parsed request body, or why it could not be parsed and which field was at fault.</summary>
internal readonly record struct ParsedBody<T>(T? Value, string? Error, string? Field)
    where T : class;

internal static class RequestBody
{
    public static async Task<ParsedBody<T>> ReadAsync<T>(HttpContext http, JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            var value = await JsonSerializer.DeserializeAsync(http.Request.Body, type, http.RequestAborted);
            return value is null ? new(null, "the request body must be a JSON object", null) : new(value, null, null);
        }
        catch (JsonException exception)
        {
            // The reader's own exception inside means the text is not JSON at all; without it, a field had the wrong type.
            var field = exception.InnerException is JsonException ? null : FieldOf(exception.Path);
            return field is null
                ? new(null, $"invalid JSON in the request body: {FirstSentence(exception.Message)}", null)
                : new(null, $"invalid value for '{field}'", field);
        }
    }

    /// <summary>"$.messages[0].content" → "messages[0].content"; the root is no field.</summary>
    private static string? FieldOf(string? path) =>
        path is null || path.Length <= 2 || !path.StartsWith("$.", StringComparison.Ordinal) ? null : path[2..];

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }
}
