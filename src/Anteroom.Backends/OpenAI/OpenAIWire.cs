using System.Text.Json;
using System.Text.Json.Serialization;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.OpenAI;

// Only the fields Anteroom reads or writes; System.Text.Json skips the rest without allocating for them.

internal sealed class OpenAIChatRequest
{
    public required string Model { get; init; }

    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    public bool Stream => true;

    // Without include_usage the stream carries no token counts at all.
    public OpenAIStreamOptions StreamOptions => OpenAIStreamOptions.WithUsage;

    // max_tokens rather than max_completion_tokens: vLLM, llama.cpp and Ollama's /v1 all honour it.
    public int? MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? Seed { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }
}

internal sealed class OpenAICompletionRequest
{
    public required string Model { get; init; }

    public required string Prompt { get; init; }

    public bool Stream => true;

    public OpenAIStreamOptions StreamOptions => OpenAIStreamOptions.WithUsage;

    public int? MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? Seed { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }
}

internal sealed class OpenAIStreamOptions
{
    public static OpenAIStreamOptions WithUsage { get; } = new() { IncludeUsage = true };

    public bool IncludeUsage { get; init; }
}

// Structs, so a streamed event costs no allocation beyond the choices array and the token's string.
internal struct OpenAIChatChunk
{
    public OpenAIChoice[]? Choices { get; set; }

    public OpenAIUsage? Usage { get; set; }

    public JsonElement? Error { get; set; }
}

internal struct OpenAIChoice
{
    public OpenAIDelta? Delta { get; set; }

    // Where /v1/completions puts the text that /v1/chat/completions puts in delta.content.
    public string? Text { get; set; }

    public string? FinishReason { get; set; }
}

internal struct OpenAIDelta
{
    public string? Content { get; set; }
}

internal struct OpenAIUsage
{
    public int PromptTokens { get; set; }

    public int CompletionTokens { get; set; }
}

// A relayed event or body as far as the relay looks at it: the first choice, and whether it carries text.
internal struct OpenAIRelayEvent
{
    [JsonPropertyName("choices")]
    [JsonConverter(typeof(FirstChoiceConverter))]
    public OpenAIRelayChoice FirstChoice { get; set; }

    public OpenAIUsage? Usage { get; set; }

    public JsonElement? Error { get; set; }
}

internal struct OpenAIRelayChoice
{
    public OpenAIRelayDelta? Delta { get; set; }

    [JsonPropertyName("text")]
    [JsonConverter(typeof(NonEmptyTextConverter))]
    public bool HasText { get; set; }

    public string? FinishReason { get; set; }
}

internal struct OpenAIRelayDelta
{
    [JsonPropertyName("content")]
    [JsonConverter(typeof(NonEmptyTextConverter))]
    public bool HasContent { get; set; }
}

/// <summary>Reads <c>choices</c> as its first element (or none), so an event costs no array.</summary>
internal sealed class FirstChoiceConverter : JsonConverter<OpenAIRelayChoice>
{
    public override bool HandleNull => true;

    public override OpenAIRelayChoice Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return default;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException($"Expected choices to be an array, found {reader.TokenType}.");
        }

        OpenAIRelayChoice first = default;
        var any = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (any)
            {
                reader.Skip();
                continue;
            }

            first = JsonSerializer.Deserialize(ref reader, OpenAIJsonContext.Default.OpenAIRelayChoice);
            any = true;
        }

        return first;
    }

    public override void Write(Utf8JsonWriter writer, OpenAIRelayChoice value, JsonSerializerOptions options) =>
        throw new NotSupportedException("Only read from relayed responses.");
}

internal sealed class OpenAIEmbeddingRequest
{
    public required string Model { get; init; }

    public required IReadOnlyList<string> Input { get; init; }

    // Said outright: some servers (and openai-python's default) otherwise pick base64.
    public string EncodingFormat => "float";
}

internal sealed class OpenAIEmbeddingResponse
{
    public List<OpenAIEmbedding>? Data { get; set; }

    public OpenAIUsage? Usage { get; set; }
}

internal sealed class OpenAIEmbedding
{
    public float[]? Embedding { get; set; }

    public int Index { get; set; }
}

internal sealed class OpenAIModelList
{
    public List<OpenAIModel>? Data { get; set; }
}

internal struct OpenAIModel
{
    public string? Id { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OpenAIChatRequest))]
[JsonSerializable(typeof(OpenAICompletionRequest))]
[JsonSerializable(typeof(OpenAIChatChunk))]
[JsonSerializable(typeof(OpenAIRelayEvent))]
[JsonSerializable(typeof(OpenAIRelayChoice))]
[JsonSerializable(typeof(OpenAIEmbeddingRequest))]
[JsonSerializable(typeof(OpenAIEmbeddingResponse))]
[JsonSerializable(typeof(OpenAIModelList))]
internal sealed partial class OpenAIJsonContext : JsonSerializerContext;
