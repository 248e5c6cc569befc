using System.Text;
using System.Text.Json;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// Reads a field as Go's <c>encoding/json</c> decodes into a struct, which is how Ollama reads a request: a key
/// matches the field by exact name or by Go's case fold, and of several matching keys the last one wins.
/// Written from Go's documented behaviour, apart from the gateway's code, so a test can check one against the other.
/// </summary>
internal static class GoStyleJson
{
    /// <summary>The value Go would decode into <paramref name="field"/> of <paramref name="obj"/>, or null when no key matches.</summary>
    public static JsonElement? Field(JsonElement obj, string field)
    {
        if (obj.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        string folded = Fold(field);
        JsonElement? last = null;
        foreach (var property in obj.EnumerateObject())
        {
            if (property.Name == field || Fold(property.Name) == folded)
            {
                last = property.Value;
            }
        }

        return last;
    }

    /// <summary>Follows a path of fields: <c>Field(root, "options", "num_predict")</c>.</summary>
    public static JsonElement? Field(JsonElement root, params string[] path)
    {
        JsonElement? at = root;
        foreach (string name in path)
        {
            at = at is { } element ? Field(element, name) : null;
        }

        return at;
    }

    /// <summary>
    /// Go's fold (<c>foldName</c> in encoding/json): ASCII letters to upper case, any other rune to
    /// <c>unicode.ToUpper(unicode.ToLower(r))</c>. In Go's Unicode tables four runes beyond ASCII land in it: the
    /// long s (U+017F) on 'S', the Kelvin sign (U+212A) on 'K', and both Turkish I's (U+0130, U+0131) on 'I'.
    /// </summary>
    public static string Fold(string name)
    {
        var folded = new StringBuilder(name.Length);
        foreach (var rune in name.EnumerateRunes())
        {
            folded.Append(rune.Value switch
            {
                < 0x80 => new Rune(char.ToUpperInvariant((char)rune.Value)),
                0x17F => new Rune('S'),
                0x212A => new Rune('K'),
                0x130 or 0x131 => new Rune('I'),
                _ => Rune.ToUpperInvariant(Rune.ToLowerInvariant(rune)),
            });
        }

        return folded.ToString();
    }
}
