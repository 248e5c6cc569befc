using System.Text.Json;
using System.Text.Json.Serialization;

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
[JsonSerializable(typeof(OpenAIChatChunk))]
[JsonSerializable(typeof(OpenAIModelList))]
internal sealed partial class OpenAIJsonContext : JsonSerializerContext;
