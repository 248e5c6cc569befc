using System.Buffers.Text;
using System.Text.Json;

namespace Anteroom.Requests;

/// <summary>
/// Holds a relayed body's output length to a cap by splicing new values into the client's own bytes.
/// </summary>
/// <remarks>
/// <para>
/// A re-serialization would change what the backend reads beyond the length: System.Text.Json's default encoder
/// writes every non-ASCII character as <c>\uXXXX</c> (a CJK prompt doubles in size, an emoji triples), numbers and
/// escapes come out in its own forms, and the body costs a second parse. Here only the length values change, and
/// every other byte reaches the backend as the client sent it.
/// </para>
/// <para>
/// The fields (top level for OpenAI: <c>max_tokens</c>, read by every OpenAI-compatible server,
/// <c>max_completion_tokens</c> by newer ones, <c>n_predict</c> by llama.cpp; <c>options.num_predict</c> for
/// Ollama) are found by their unescaped names, so <c>"max\u005ftokens"</c> is held like <c>"max_tokens"</c>. The
/// door has already refused repeats and case variants of them (see <c>JsonBodyCheck</c>), so the names matched
/// here are the only ones any backend reads as these fields.
/// </para>
/// <para>
/// Cost: one forward pass of <see cref="Utf8JsonReader"/> that skips every other value whole, a handful of edits on
/// the stack, and, only when something changes, one array of the final size.
/// </para>
/// </remarks>
internal static class OutputLengthSplice
{
    /// <summary>
    /// The body with each length field it carries held to <paramref name="cap"/>: a positive whole number up to the
    /// cap stays as written, anything else (larger, zero, Ollama's endless -1 and -2, null, a fraction, a string)
    /// becomes the cap; <c>max_tokens</c> (OpenAI) or <c>options.num_predict</c> (Ollama) is added when absent. The
    /// body itself when nothing changes. It must be a JSON object, as every body past the door is.
    /// </summary>
    public static byte[] Apply(byte[] body, ClientProtocol protocol, int cap)
    {
        var edits = new EditList(stackalloc Edit[8]);
        // Scoped like the edits on the stack, so the two can be passed together.
        scoped var reader = new Utf8JsonReader(body);
        reader.Read();
        int rootStart = (int)reader.TokenStartIndex + 1;
        int members = 0;
        bool lengthSeen = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            members++;
            var field = FieldOf(ref reader, protocol);
            reader.Read();
            switch (field)
            {
                case Field.MaxTokens:
                    lengthSeen = true;
                    Hold(ref reader, cap, ref edits);
                    break;
                case Field.Alias:
                    Hold(ref reader, cap, ref edits);
                    break;
                case Field.Options:
                    lengthSeen = true;
                    HoldOptions(ref reader, cap, ref edits);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        if (!lengthSeen)
        {
            // Spliced in first, so the rest of the body (and where it ends) is untouched.
            edits.Add(new Edit(rootStart, rootStart, protocol == ClientProtocol.Ollama ? Splice.OptionsMember : Splice.MaxTokensMember, members > 0));
        }

        return edits.Count == 0 ? body : Write(body, edits.Sorted(), cap);
    }

    private static Field FieldOf(ref Utf8JsonReader reader, ClientProtocol protocol)
    {
        // ValueTextEquals compares the unescaped name.
        if (protocol == ClientProtocol.Ollama)
        {
            return reader.ValueTextEquals("options"u8) ? Field.Options : Field.Other;
        }

        return reader.ValueTextEquals("max_tokens"u8) ? Field.MaxTokens
            : reader.ValueTextEquals("max_completion_tokens"u8) || reader.ValueTextEquals("n_predict"u8) ? Field.Alias
            : Field.Other;
    }

    /// <summary>Keeps the value the reader is on when it is a positive whole number up to the cap; else replaces it by the cap.</summary>
    private static void Hold(ref Utf8JsonReader reader, int cap, ref EditList edits)
    {
        int start = (int)reader.TokenStartIndex;
        bool kept = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out long asked) && asked > 0 && asked <= cap;
        reader.Skip();
        if (!kept)
        {
            edits.Add(new Edit(start, (int)reader.BytesConsumed, Splice.Value, false));
        }
    }

    /// <summary>Holds <c>num_predict</c> inside the options object the reader is on, adding it when absent; replaces any other value.</summary>
    private static void HoldOptions(ref Utf8JsonReader reader, int cap, ref EditList edits)
    {
        int start = (int)reader.TokenStartIndex;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            // Only null gets past the door; Go leaves the options map empty on it, which is no limit.
            reader.Skip();
            edits.Add(new Edit(start, (int)reader.BytesConsumed, Splice.OptionsObject, false));
            return;
        }

        int members = 0;
        bool seen = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            members++;
            bool numPredict = reader.ValueTextEquals("num_predict"u8);
            reader.Read();
            if (numPredict)
            {
                seen = true;
                Hold(ref reader, cap, ref edits);
            }
            else
            {
                reader.Skip();
            }
        }

        if (!seen)
        {
            edits.Add(new Edit(start + 1, start + 1, Splice.NumPredictMember, members > 0));
        }
    }

    private static byte[] Write(byte[] body, ReadOnlySpan<Edit> edits, int cap)
    {
        Span<byte> digits = stackalloc byte[11];
        Utf8Formatter.TryFormat(cap, digits, out int written);
        digits = digits[..written];

        int length = body.Length;
        foreach (var edit in edits)
        {
            length += Prefix(edit.Splice).Length + digits.Length + Suffix(edit.Splice).Length + (edit.Comma ? 1 : 0) - (edit.End - edit.Start);
        }

        byte[] spliced = GC.AllocateUninitializedArray<byte>(length);
        var to = spliced.AsSpan();
        int from = 0;
        foreach (var edit in edits)
        {
            Append(ref to, body.AsSpan(from, edit.Start - from));
            Append(ref to, Prefix(edit.Splice));
            Append(ref to, digits);
            Append(ref to, Suffix(edit.Splice));
            if (edit.Comma)
            {
                Append(ref to, ","u8);
            }

            from = edit.End;
        }

        Append(ref to, body.AsSpan(from));
        return spliced;
    }

    private static void Append(ref Span<byte> to, scoped ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(to);
        to = to[bytes.Length..];
    }

    private static ReadOnlySpan<byte> Prefix(Splice splice) => splice switch
    {
        Splice.MaxTokensMember => "\"max_tokens\":"u8,
        Splice.NumPredictMember => "\"num_predict\":"u8,
        Splice.OptionsMember => "\"options\":{\"num_predict\":"u8,
        Splice.OptionsObject => "{\"num_predict\":"u8,
        _ => [],
    };

    private static ReadOnlySpan<byte> Suffix(Splice splice) => splice is Splice.OptionsMember or Splice.OptionsObject ? "}"u8 : [];

    private enum Field : byte
    {
        Other,
        MaxTokens,
        Alias,
        Options,
    }

    /// <summary>What goes in place of an edit's bytes, around the cap.</summary>
    private enum Splice : byte
    {
        /// <summary>The cap alone, for a length value.</summary>
        Value,

        /// <summary><c>"max_tokens":cap</c>, a new member of the top level.</summary>
        MaxTokensMember,

        /// <summary><c>"num_predict":cap</c>, a new member of <c>options</c>.</summary>
        NumPredictMember,

        /// <summary><c>"options":{"num_predict":cap}</c>, a new member of the top level.</summary>
        OptionsMember,

        /// <summary><c>{"num_predict":cap}</c>, for an <c>options</c> value that is not an object.</summary>
        OptionsObject,
    }

    /// <summary>Bytes [Start, End) of the body replaced (or, when equal, a point inserted at), and whether a comma follows.</summary>
    private readonly record struct Edit(int Start, int End, Splice Splice, bool Comma);

    /// <summary>The edits, on the stack unless a body holds more length fields than any the door lets through.</summary>
    private ref struct EditList(Span<Edit> items)
    {
        private Span<Edit> _items = items;

        public int Count { get; private set; }

        public void Add(Edit edit)
        {
            if (Count == _items.Length)
            {
                var more = new Edit[Count * 2];
                _items.CopyTo(more);
                _items = more;
            }

            _items[Count++] = edit;
        }

        /// <summary>In body order: all but the additions come in order, so a short insertion sort.</summary>
        public ReadOnlySpan<Edit> Sorted()
        {
            var edits = _items[..Count];
            for (int i = 1; i < edits.Length; i++)
            {
                for (int j = i; j > 0 && edits[j].Start < edits[j - 1].Start; j--)
                {
                    (edits[j], edits[j - 1]) = (edits[j - 1], edits[j]);
                }
            }

            return edits;
        }
    }
}
