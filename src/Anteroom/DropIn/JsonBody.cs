using System.Text.Json;

namespace Anteroom.DropIn;

/// <summary>
/// Why a body could not be read: the status, a stable code (<c>body_too_large</c>, <c>invalid_json</c>,
/// <c>invalid_request</c>, <c>duplicate_field</c>, <c>ambiguous_field</c>), a message, and the field at fault if one is.
/// </summary>
internal sealed record BodyProblem(int Status, string Code, string Message, string? Field = null);

/// <summary>A request body read whole (so it can be relayed as sent, but for its output length) and parsed.</summary>
internal sealed class JsonBody : IDisposable
{
    private JsonBody(byte[] bytes, JsonDocument document)
    {
        Bytes = bytes;
        Document = document;
    }

    public byte[] Bytes { get; }

    public JsonDocument Document { get; }

    public JsonElement Root => Document.RootElement;

    /// <summary>The nesting the parser accepts (System.Text.Json's default), also what <see cref="JsonBodyCheck"/> walks.</summary>
    private const int MaxDepth = 64;

    /// <summary>
    /// Reads and parses the body, which must be a JSON object that every backend reads as the gateway does (see
    /// <see cref="JsonBodyCheck"/>); on failure says what is wrong.
    /// </summary>
    public static async Task<(JsonBody? Body, BodyProblem? Problem)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        byte[] bytes;
        try
        {
            bytes = await ReadBytesAsync(request, cancellationToken);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, new BodyProblem(StatusCodes.Status413PayloadTooLarge, "body_too_large", "The request body is larger than this server accepts."));
        }

        try
        {
            var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = MaxDepth });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                document.Dispose();
                return (null, new BodyProblem(StatusCodes.Status400BadRequest, "invalid_request", "The request body must be a JSON object."));
            }

            if (JsonBodyCheck.Find(bytes, MaxDepth) is { } problem)
            {
                document.Dispose();
                return (null, problem);
            }

            return (new JsonBody(bytes, document), null);
        }
        catch (JsonException exception)
        {
            return (null, new BodyProblem(StatusCodes.Status400BadRequest, "invalid_json", $"The request body is not valid JSON: {exception.Message}"));
        }
    }

    public void Dispose() => Document.Dispose();

    /// <summary>
    /// The body's bytes: read straight into an array of the declared length when that is within the server's body
    /// size limit (the server holds the client to its declared length), else gathered as they come, which meets
    /// the limit's 413 before holding more than it.
    /// </summary>
    private static async ValueTask<byte[]> ReadBytesAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        long? limit = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (request.ContentLength is long length and > 0 && limit is long max && length <= max && length <= Array.MaxLength)
        {
            var exact = new byte[length];
            int read = await request.Body.ReadAtLeastAsync(exact, exact.Length, throwOnEndOfStream: false, cancellationToken);
            return read == exact.Length ? exact : exact[..read];
        }

        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        return buffer.ToArray();
    }
}

/// <summary>Reads typed fields of a JSON object, remembering the first field that is wrong and why.</summary>
internal sealed class FieldReader(JsonElement root)
{
    public string? Field { get; private set; }

    public string? Problem { get; private set; }

    public bool IsValid => Problem is null;

    public JsonElement Element(string name) => root.TryGetProperty(name, out var value) ? value : default;

    public bool Has(string name) => root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null;

    public string? String(string name, bool required = false)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            if (required)
            {
                Fail(name, $"'{name}' is required.");
            }

            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            Fail(name, $"'{name}' must be a string.");
            return null;
        }

        string text = value.GetString()!;
        if (required && text.Length == 0)
        {
            Fail(name, $"'{name}' must not be empty.");
        }

        return text;
    }

    public bool? Bool(string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            Fail(name, $"'{name}' must be true or false.");
            return null;
        }

        return value.GetBoolean();
    }

    public int? Int(string name, int min, int max)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int number) || number < min || number > max)
        {
            Fail(name, $"'{name}' must be a whole number from {min} to {max}.");
            return null;
        }

        return number;
    }

    public double? Number(string name, double min, double max)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        // Beyond a double's range a number reads as infinity, which no range admits.
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !double.IsFinite(number) || number < min || number > max)
        {
            Fail(name, $"'{name}' must be a number from {min} to {max}.");
            return null;
        }

        return number;
    }

    /// <summary>A string or an array of strings, as <c>stop</c> and <c>input</c> take.</summary>
    public IReadOnlyList<string>? Strings(string name, bool required = false)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            if (required)
            {
                Fail(name, $"'{name}' is required.");
            }

            return null;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return [value.GetString()!];
        }

        if (value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(item => item.ValueKind == JsonValueKind.String))
        {
            var items = value.EnumerateArray().Select(item => item.GetString()!).ToList();
            if (required && items.Count == 0)
            {
                Fail(name, $"'{name}' must not be empty.");
            }

            return items;
        }

        Fail(name, $"'{name}' must be a string or an array of strings.");
        return null;
    }

    public FieldReader? Object(string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            Fail(name, $"'{name}' must be an object.");
            return null;
        }

        return new FieldReader(value);
    }

    /// <summary>Takes over the first problem of a nested reader, naming the field by its path.</summary>
    public void Adopt(string prefix, FieldReader? nested)
    {
        if (nested is { IsValid: false } && IsValid)
        {
            Fail($"{prefix}.{nested.Field}", nested.Problem!.Replace($"'{nested.Field}'", $"'{prefix}.{nested.Field}'", StringComparison.Ordinal));
        }
    }

    public void Fail(string field, string problem)
    {
        if (IsValid)
        {
            Field = field;
            Problem = problem;
        }
    }
}
