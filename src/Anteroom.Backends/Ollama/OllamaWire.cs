using System.Text.Json;
using System.Text.Json.Serialization;
using Anteroom.Backends.Http;

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

internal sealed class OllamaGenerateRequest
{
    public required string Model { get; init; }

    public required string Prompt { get; init; }

    public string? System { get; init; }

    public bool Stream => true;

    public OllamaOptions? Options { get; init; }
}

internal sealed class OllamaOptions
{
    public int? NumPredict { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? Seed { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }
}

// Structs, so a streamed line costs no allocation beyond the token's string.
internal struct OllamaChatChunk
{
    public OllamaChunkMessage? Message { get; set; }

    // Where /api/generate puts the text that /api/chat puts in message.content.
    public string? Response { get; set; }

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

// A relayed line or body as far as the relay looks at it: whether it carries text, not the text itself.
internal struct OllamaRelayLine
{
    public OllamaRelayMessage? Message { get; set; }

    [JsonPropertyName("response")]
    [JsonConverter(typeof(NonEmptyTextConverter))]
    public bool HasResponse { get; set; }

    public bool Done { get; set; }

    public string? DoneReason { get; set; }

    public int? PromptEvalCount { get; set; }

    public int? EvalCount { get; set; }

    public JsonElement? Error { get; set; }
}

internal struct OllamaRelayMessage
{
    [JsonPropertyName("content")]
    [JsonConverter(typeof(NonEmptyTextConverter))]
    public bool HasContent { get; set; }
}

internal sealed class OllamaEmbedRequest
{
    public required string Model { get; init; }

    public required IReadOnlyList<string> Input { get; init; }
}

internal sealed class OllamaEmbedResponse
{
    public List<float[]>? Embeddings { get; set; }

    public int? PromptEvalCount { get; set; }
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
[JsonSerializable(typeof(OllamaGenerateRequest))]
[JsonSerializable(typeof(OllamaChatChunk))]
[JsonSerializable(typeof(OllamaRelayLine))]
[JsonSerializable(typeof(OllamaEmbedRequest))]
[JsonSerializable(typeof(OllamaEmbedResponse))]
[JsonSerializable(typeof(OllamaTagList))]
internal sealed partial class OllamaJsonContext : JsonSerializerContext;
