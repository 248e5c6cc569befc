using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Anteroom.Simulator.Ollama;
using Anteroom.Simulator.OpenAI;

namespace Anteroom.Simulator.Http;

/// <summary>Source-generated JSON for every body the simulator reads or writes; both APIs use snake_case.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SimulatorStats))]
[JsonSerializable(typeof(OllamaChatRequest))]
[JsonSerializable(typeof(OllamaGenerateRequest))]
[JsonSerializable(typeof(OllamaEmbedRequest))]
[JsonSerializable(typeof(OllamaLegacyEmbeddingRequest))]
[JsonSerializable(typeof(OllamaShowRequest))]
[JsonSerializable(typeof(OllamaChatResponse))]
[JsonSerializable(typeof(OllamaGenerateResponse))]
[JsonSerializable(typeof(OllamaError))]
[JsonSerializable(typeof(OllamaModelList))]
[JsonSerializable(typeof(OllamaVersion))]
[JsonSerializable(typeof(OllamaShowResponse))]
[JsonSerializable(typeof(OllamaEmbedResponse))]
[JsonSerializable(typeof(OllamaLegacyEmbeddingResponse))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(EmbeddingRequest))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(TextCompletion))]
[JsonSerializable(typeof(EmbeddingList<float[]>), TypeInfoPropertyName = "FloatEmbeddingList")]
[JsonSerializable(typeof(EmbeddingList<string>), TypeInfoPropertyName = "Base64EmbeddingList")]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(OpenAIErrorBody))]
internal sealed partial class SimulatorJson : JsonSerializerContext;

/// <summary>The options every response is written with.</summary>
internal sealed partial class SimulatorJson
{
    // Model servers write quotes, apostrophes and non-ASCII text as they are ("model 'x' not found"); the default
    // encoder would escape them for safe embedding in HTML, which no API client needs.
    private static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    /// <summary>The context to use everywhere: snake_case, nulls left out, text unescaped where JSON allows.</summary>
    public static SimulatorJson Wire { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = Encoder,
    });

    public static JsonWriterOptions WriterOptions { get; } = new() { Encoder = Encoder };
}
