using System.Text.Json;
using Anteroom.Simulator.Generation;

namespace Anteroom.Simulator.OpenAI;

/// <summary>Reads the loosely typed inputs of the OpenAI API: a string, text parts, or token ids.</summary>
internal static class OpenAIInputs
{
    /// <summary>Characters of a chat message's content, or null when it is of no known shape.</summary>
    public static long? ContentCharacters(JsonElement content)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return 0;
            case JsonValueKind.String:
                return content.GetString()!.Length;
            case JsonValueKind.Array:
                long characters = 0;
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object)
                        return null;
                    if (part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
                        characters += text.GetString()!.Length;
                }

                return characters;
            default:
                return null;
        }
    }

    /// <summary>
    /// The pieces of a prompt or an embedding input, each with its token count: strings are estimated, token-id
    /// arrays counted. Null when the value is missing, empty or of no known shape.
    /// </summary>
    public static List<(string Text, int Tokens)>? Pieces(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return [Text(value.GetString()!)];
            case JsonValueKind.Array when value.GetArrayLength() > 0:
                var pieces = new List<(string, int)>();
                var items = value.EnumerateArray().ToList();
                if (items.All(item => item.ValueKind == JsonValueKind.Number))
                    return [TokenIds(value)];
                foreach (var item in items)
                {
                    if (item.ValueKind == JsonValueKind.String)
                        pieces.Add(Text(item.GetString()!));
                    else if (item.ValueKind == JsonValueKind.Array && item.EnumerateArray().All(id => id.ValueKind == JsonValueKind.Number))
                        pieces.Add(TokenIds(item));
                    else
                        return null;
                }

                return pieces;
            default:
                return null;
        }
    }

    private static (string, int) Text(string text) => (text, TokenEstimate.FromCharacters(text.Length));

    private static (string, int) TokenIds(JsonElement ids) => (ids.GetRawText(), Math.Max(1, ids.GetArrayLength()));
}
