using System.Text;
using System.Text.Json;

namespace Anteroom.Backends.Http;

/// <summary>Pulls a human-readable message out of whatever error a model server sent.</summary>
internal static class BackendErrorText
{
    // Enough to say what went wrong without letting a proxy's HTML error page flood our logs.
    private const int MaxLength = 500;

    /// <summary>
    /// The message of an error body: Ollama's <c>{"error":"..."}</c>, OpenAI's <c>{"error":{"message":...}}</c>,
    /// the bare <c>{"message":...}</c> or <c>{"detail":...}</c> some servers use, else the text itself; null when empty.
    /// </summary>
    public static string? FromBody(ReadOnlySpan<byte> body)
    {
        body = body.Trim(" \t\r\n"u8);
        if (body.IsEmpty)
        {
            return null;
        }

        if (body[0] == (byte)'{' && TryParse(body) is { ValueKind: JsonValueKind.Object } root)
        {
            if (root.TryGetProperty("error", out var error))
            {
                return FromErrorValue(error);
            }

            foreach (var name in (ReadOnlySpan<string>)["message", "detail"])
            {
                if (root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
                {
                    return Truncate(value.GetString()!);
                }
            }
        }

        return Truncate(Encoding.UTF8.GetString(body[..Math.Min(body.Length, MaxLength * 4)]));
    }

    /// <summary>The message of an <c>error</c> property: a string, or an object with a <c>message</c>.</summary>
    public static string FromErrorValue(JsonElement error)
    {
        if (error.ValueKind == JsonValueKind.String)
        {
            return Truncate(error.GetString()!);
        }

        if (error.ValueKind == JsonValueKind.Object
            && error.TryGetProperty("message", out var message)
            && message.ValueKind == JsonValueKind.String)
        {
            return Truncate(message.GetString()!);
        }

        return Truncate(error.GetRawText());
    }

    /// <summary>The start of an offending line or event, for a protocol violation's message.</summary>
    public static string Preview(ReadOnlySpan<byte> data) =>
        Truncate(Encoding.UTF8.GetString(data[..Math.Min(data.Length, 100)]), 100);

    private static JsonElement? TryParse(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            return JsonElement.ParseValue(ref reader);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Truncate(string text, int maxLength = MaxLength)
    {
        if (text.Length <= maxLength)
        {
            return text;
        }

        // Never cut a surrogate pair in half.
        var cut = char.IsHighSurrogate(text[maxLength - 1]) ? maxLength - 1 : maxLength;
        return string.Concat(text.AsSpan(0, cut), "…");
    }
}
