using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Anteroom.DropIn;

/// <summary>
/// Makes sure that what the gateway reads from a body is exactly what any backend will read from the same bytes.
/// </summary>
/// <remarks>
/// <para>
/// Relayed bodies reach backends byte for byte (but for their output-length values, spliced in place by
/// <see cref="Requests.OutputLengthSplice"/>), and backends do not all read JSON alike. The gateway matches field
/// names exactly, and System.Text.Json and Python take the last of two equal names. Ollama (Go's
/// <c>encoding/json</c>) matches a struct field by exact name, or else by a case fold (ASCII letters to upper case,
/// any other rune to <c>ToUpper(ToLower(r))</c>, so <c>ſ</c> reads as <c>S</c> and the Kelvin sign as <c>K</c>),
/// and the last matching key wins. So <c>{"model":"demo","Model":"big"}</c> passes a check of <c>model</c> and runs
/// <c>big</c>. One walk over every body refuses:
/// </para>
/// <list type="bullet">
/// <item>two names in one object that are equal under Go's fold (exact duplicates included), anywhere in the body:
/// which one a reader takes differs by reader. Some places are exact-key maps in Go (Ollama's <c>options</c>, a
/// tool's parameter <c>properties</c>), where <c>id</c> and <c>ID</c> are two keys, but which places are maps and
/// which are structs differs between Ollama versions and between the servers one OpenAI route may front (Ollama's
/// <c>/v1</c> decodes structs; vLLM and llama.cpp match exactly). A list of map places would have to follow every
/// backend's version, and a place it got wrong would let two readers see different values; refusing costs only a
/// 400 naming the second name, for data (a schema, arguments) that uses two names differing only in case, which the
/// client can rename. So the fold applies everywhere;</item>
/// <item>a name that folds to a field the gateway reads at that place but is spelled otherwise (<c>Model</c>,
/// <c>Max_Tokens</c>, <c>options.Num_Predict</c>): the gateway would not see it, a Go backend would read it as that
/// field. Only the places the gateway reads are checked (the top level, <c>options</c>, <c>stream_options</c>,
/// <c>messages[i]</c> and their content parts): elsewhere, such as a tool's parameter schema, any spelling is the
/// client's own data;</item>
/// <item>invalid UTF-8 and lone surrogates in any name or string: readers replace, refuse or keep them differently,
/// and the gateway's own reads of them fail.</item>
/// </list>
/// <para>
/// With these gone, each field the gateway reads appears at most once, spelled exactly, and every reader
/// (exact, folding, first-wins or last-wins) finds the same value there, so the original bytes can be relayed
/// rather than re-serialized (which would also have to decide what the client meant), and the output-length fields
/// the splice finds by exact (unescaped) name are the only ones any backend reads.
/// </para>
/// <para>
/// Cost: one forward pass of <see cref="Utf8JsonReader"/> over the bytes. Names and strings are checked in place;
/// only escaped ones are unescaped, into one pooled buffer. Folded names go into one shared buffer, and a single
/// set keyed by (object, folded name) finds repeats, so nothing is allocated per name beyond amortized growth.
/// </para>
/// </remarks>
internal sealed class JsonBodyCheck : IEqualityComparer<JsonBodyCheck.FoldedName>
{
    private const int MaxPathSegment = 64;

    // The fields the gateway reads, by place: names any endpoint reads there (native, OpenAI, Ollama, admin).
    private static readonly KnownField[] RootFields = Fields(
        "model", "name", "messages", "message", "prompt", "system", "input", "stream", "stream_options", "options",
        "max_tokens", "max_completion_tokens", "n_predict", "n", "best_of", "temperature", "top_p", "seed", "stop",
        "user", "encoding_format", "reconnect_grace_ms", "max_wait_ms", "conversation_id", "title", "key", "tier",
        "expires", "admin", "can_act_for_users");

    private static readonly KnownField[] OptionsFields = Fields("num_predict", "temperature", "top_p", "seed", "stop");
    private static readonly KnownField[] StreamOptionsFields = Fields("include_usage");
    private static readonly KnownField[] MessageFields = Fields("role", "content");
    private static readonly KnownField[] ContentPartFields = Fields("text");

    // One check per thread, reused: a check runs synchronously from start to end, and its stack, name set and
    // buffers were most of what a request allocated at the door.
    [ThreadStatic]
    private static JsonBodyCheck? t_cached;

    private byte[] _body;
    private readonly HashSet<FoldedName> _names;
    private readonly Frame[] _stack;
    private byte[] _folded = new byte[256];
    private int _foldedLength;
    private byte[]? _scratch;
    private int _scratchLength;
    private int _depth;
    private int _objects;

    private JsonBodyCheck(byte[] body, int maxDepth)
    {
        _body = body;
        _names = new HashSet<FoldedName>(this);
        _stack = new Frame[maxDepth + 1];
    }

    private enum Place : byte
    {
        Other,
        Root,
        Options,
        StreamOptions,
        Messages,
        Message,
        Content,
        ContentPart,
    }

    /// <summary>What is wrong with an already parsed body, naming the field by its path; null when nothing is.</summary>
    public static BodyProblem? Find(byte[] body, int maxDepth)
    {
        var check = t_cached is { } cached && cached._stack.Length == maxDepth + 1 ? cached : new JsonBodyCheck(body, maxDepth);
        t_cached = null;
        check._body = body;
        try
        {
            return check.Walk();
        }
        finally
        {
            if (check._scratch is { } scratch)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }

            check.Reset();
            t_cached = check;
        }
    }

    private void Reset()
    {
        _body = [];
        bool manyNames = _names.Count > 256;
        _names.Clear();
        if (manyNames)
        {
            _names.TrimExcess();
        }

        _scratch = null;
        _scratchLength = 0;
        _foldedLength = 0;
        _depth = 0;
        _objects = 0;
        // A huge body's name buffer is not kept for the thread's lifetime.
        if (_folded.Length > 4096)
        {
            _folded = new byte[256];
        }
    }

    /// <summary>Go's <c>encoding/json</c> fold of a name (its <c>foldName</c>): what it compares to find a struct field.</summary>
    internal static int Fold(ReadOnlySpan<byte> name, Span<byte> folded)
    {
        int written = 0;
        while (!name.IsEmpty)
        {
            byte b = name[0];
            if (b < 0x80)
            {
                folded[written++] = b is >= (byte)'a' and <= (byte)'z' ? (byte)(b - ('a' - 'A')) : b;
                name = name[1..];
                continue;
            }

            Rune.DecodeFromUtf8(name, out var rune, out int consumed);
            written += FoldRune(rune).EncodeToUtf8(folded[written..]);
            name = name[consumed..];
        }

        return written;
    }

    /// <remarks>
    /// Exactly four runes beyond ASCII fold into it under Go's tables, and they are what makes a name look unlike a
    /// field and still read as one, so they are spelled out: .NET's invariant casing (this app runs with invariant
    /// globalization) maps only the Kelvin sign, leaving the long s and both Turkish I's alone. Every other rune folds
    /// by .NET's simple case mapping, which can differ from Go's only on a few rare letters, none of them ASCII.
    /// </remarks>
    private static Rune FoldRune(Rune rune) => rune.Value switch
    {
        0x017F => new Rune('S'),
        0x212A => new Rune('K'),
        0x0130 or 0x0131 => new Rune('I'),
        _ => Rune.ToUpperInvariant(Rune.ToLowerInvariant(rune)),
    };

    private BodyProblem? Walk()
    {
        var reader = new Utf8JsonReader(_body, new JsonReaderOptions { MaxDepth = _stack.Length - 1 });
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                case JsonTokenType.StartArray:
                    bool isObject = reader.TokenType == JsonTokenType.StartObject;
                    _stack[_depth] = new Frame
                    {
                        Place = _depth == 0 ? Place.Root : ChildPlace(ref _stack[_depth - 1], isObject),
                        IsObject = isObject,
                        ObjectId = isObject ? _objects++ : -1,
                    };
                    _depth++;
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    _depth--;
                    ValueEnded();
                    break;
                case JsonTokenType.PropertyName:
                    ref var frame = ref _stack[_depth - 1];
                    frame.KeyStart = (int)reader.TokenStartIndex + 1;
                    frame.KeyLength = reader.ValueSpan.Length;
                    if (CheckName(ref reader, ref frame) is { } nameProblem)
                    {
                        return nameProblem;
                    }

                    break;
                case JsonTokenType.String:
                    if (!IsValidText(ref reader))
                    {
                        return Problem("invalid_json", "is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate");
                    }

                    ValueEnded();
                    break;
                default:
                    ValueEnded();
                    break;
            }
        }

        return null;
    }

    private BodyProblem? CheckName(ref Utf8JsonReader reader, ref Frame frame)
    {
        if (!IsValidText(ref reader))
        {
            return Problem("invalid_json", "is not a valid field name: it holds invalid UTF-8 or a lone UTF-16 surrogate");
        }

        // IsValidText left the unescaped name in the scratch buffer when it had escapes.
        ReadOnlySpan<byte> name = reader.ValueIsEscaped ? _scratch.AsSpan(0, _scratchLength) : reader.ValueSpan;
        frame.ChildPlace = ChildPlaceOf(frame.Place, name);

        // A fold is at most half as long again as its name (a two-byte rune may fold to a three-byte one).
        int needed = _foldedLength + (name.Length * 3 / 2) + 4;
        if (needed > _folded.Length)
        {
            Array.Resize(ref _folded, Math.Max(needed, _folded.Length * 2));
        }

        int length = Fold(name, _folded.AsSpan(_foldedLength));
        var folded = new FoldedName(frame.ObjectId, _foldedLength, length);
        if (!_names.Add(folded))
        {
            return Problem("duplicate_field",
                "appears more than once in its object (names that differ only in letter case count as the same: backends match them ignoring case)");
        }

        _foldedLength += length;
        foreach (var field in FieldsAt(frame.Place))
        {
            if (_folded.AsSpan(folded.Start, folded.Length).SequenceEqual(field.Folded) && !name.SequenceEqual(field.Name))
            {
                return Problem("ambiguous_field",
                    $"must be spelled '{Encoding.ASCII.GetString(field.Name)}': backends that match names ignoring case would read it as that field");
            }
        }

        return null;
    }

    /// <summary>True when the string or name holds only valid UTF-8 and, once unescaped, no lone surrogate.</summary>
    private bool IsValidText(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            return Utf8.IsValid(reader.ValueSpan);
        }

        // Unescaping never lengthens a string; it checks the bytes and the surrogate pairs as it goes.
        int length = reader.ValueSpan.Length;
        if (_scratch is null || _scratch.Length < length)
        {
            if (_scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(_scratch);
            }

            _scratch = ArrayPool<byte>.Shared.Rent(Math.Max(length, 256));
        }

        try
        {
            _scratchLength = reader.CopyString(_scratch);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private void ValueEnded()
    {
        if (_depth > 0 && !_stack[_depth - 1].IsObject)
        {
            _stack[_depth - 1].Index++;
        }
    }

    private static Place ChildPlace(ref Frame parent, bool isObject) => parent.IsObject
        ? parent.ChildPlace
        : (parent.Place, isObject) switch
        {
            (Place.Messages, true) => Place.Message,
            (Place.Content, true) => Place.ContentPart,
            _ => Place.Other,
        };

    private static Place ChildPlaceOf(Place place, ReadOnlySpan<byte> name) => place switch
    {
        Place.Root when name.SequenceEqual("options"u8) => Place.Options,
        Place.Root when name.SequenceEqual("stream_options"u8) => Place.StreamOptions,
        Place.Root when name.SequenceEqual("messages"u8) => Place.Messages,
        Place.Message when name.SequenceEqual("content"u8) => Place.Content,
        _ => Place.Other,
    };

    private static KnownField[] FieldsAt(Place place) => place switch
    {
        Place.Root => RootFields,
        Place.Options => OptionsFields,
        Place.StreamOptions => StreamOptionsFields,
        Place.Message => MessageFields,
        Place.ContentPart => ContentPartFields,
        _ => [],
    };

    // The gateway's field names are lower-case ASCII, so their fold is their upper case.
    private static KnownField[] Fields(params string[] names) =>
        [.. names.Select(name => new KnownField(Encoding.ASCII.GetBytes(name), Encoding.ASCII.GetBytes(name.ToUpperInvariant())))];

    /// <summary>A problem at the current token, naming it by its path (<c>options.Num_Predict</c>, <c>messages[0].content</c>).</summary>
    private BodyProblem Problem(string code, string what)
    {
        var path = new StringBuilder();
        for (int i = 0; i < _depth; i++)
        {
            ref var frame = ref _stack[i];
            if (!frame.IsObject)
            {
                path.Append('[').Append(frame.Index).Append(']');
                continue;
            }

            // As the client wrote it (escapes included), cut short: a path names the field, it need not repeat it.
            var raw = _body.AsSpan(frame.KeyStart, Math.Min(frame.KeyLength, MaxPathSegment));
            path.Append(i == 0 ? "" : ".").Append(Encoding.UTF8.GetString(raw));
        }

        string field = path.ToString();
        return new BodyProblem(StatusCodes.Status400BadRequest, code, $"'{field}' {what}.", field);
    }

    bool IEqualityComparer<FoldedName>.Equals(FoldedName x, FoldedName y) =>
        x.ObjectId == y.ObjectId && _folded.AsSpan(x.Start, x.Length).SequenceEqual(_folded.AsSpan(y.Start, y.Length));

    int IEqualityComparer<FoldedName>.GetHashCode(FoldedName name)
    {
        var hash = default(HashCode);
        hash.Add(name.ObjectId);
        hash.AddBytes(_folded.AsSpan(name.Start, name.Length));
        return hash.ToHashCode();
    }

    /// <summary>A folded name in the shared buffer, and the object it belongs to.</summary>
    internal readonly record struct FoldedName(int ObjectId, int Start, int Length);

    private sealed record KnownField(byte[] Name, byte[] Folded);

    private struct Frame
    {
        public Place Place;
        public bool IsObject;
        public int ObjectId;
        public int Index;
        public int KeyStart;
        public int KeyLength;
        public Place ChildPlace;
    }
}
