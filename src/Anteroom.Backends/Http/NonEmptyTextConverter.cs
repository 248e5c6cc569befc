using System.Text.Json;
using System.Text.Json.Serialization;

namespace Anteroom.Backends.Http;

/// <summary>
/// Reads a JSON string as "is it non-empty" without decoding it: a relay only counts the text it passes on, so a
/// token costs no string allocation. Escapes do not matter — an empty string has no raw bytes either.
/// </summary>
internal sealed class NonEmptyTextConverter : JsonConverter<bool>
{
    public override bool HandleNull => true;

    public override bool Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.HasValueSequence ? reader.ValueSequence.Length > 0 : reader.ValueSpan.Length > 0,
        JsonTokenType.Null => false,
        _ => throw new JsonException($"Expected a string, found {reader.TokenType}."),
    };

    public override void Write(Utf8JsonWriter writer, bool value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Only read from relayed responses.");
}
