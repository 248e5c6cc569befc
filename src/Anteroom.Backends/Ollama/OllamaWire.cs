using System.Text.Json;
using System.Text.Json.Serialization;

namespace Anteroom.Backends.Ollama;

// Only the fields Anteroom reads or writes; System.Text.Json skips the rest without allocating for them.

internal sealed class OllamaChatRequest
{
    public required string Model { get; init; }

    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    // Omitted means "stream" to Ollama, but saying it keeps the request obvious in captures and logs.
    public bool Stream => true;

    public OllamaOptions? Options { get; init; }
}

internal sealed class OllamaOptions
{
    public int? NumPredict { get; init; }

    public double? Temperature { get; init; }
}

// Structs, so a streamed line costs no allocation beyond the token's string.
internal struct OllamaChatChunk
{
    public OllamaChunkMessage? Message { get; set; }

    public bool Done { get; set; }

    public string? DoneReason { get; set; }

    public int? PromptEvalCount { get; set; }

    public int? EvalCount { get; set; }

    public JsonElement? Error { get; set; }
}

internal struct OllamaChunkMessage
{
    public string? Content { get; set; }
}

internal sealed class OllamaTagList
{
    public List<OllamaTag>? Models { get; set; }
}

internal struct OllamaTag
{
    public string? Name { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OllamaChatRequest))]
[JsonSerializable(typeof(OllamaChatChunk))]
[JsonSerializable(typeof(OllamaTagList))]
internal sealed partial class OllamaJsonContext : JsonSerializerContext;
