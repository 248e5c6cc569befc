using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Anteroom.DropIn;

// The Ollama API's JSON shapes as ollama-js and OllamaSharp parse them. Durations are nanoseconds.

internal sealed record OllamaMessage(string Role, string Content);

internal sealed record OllamaChatChunk(string Model, string CreatedAt, OllamaMessage Message, bool Done);

internal sealed record OllamaGenerateChunk(string Model, string CreatedAt, string Response, bool Done);

internal sealed record OllamaChatFinal(
    string Model, string CreatedAt, OllamaMessage Message, bool Done, string DoneReason,
    long TotalDuration, long LoadDuration, int PromptEvalCount, long PromptEvalDuration, int EvalCount, long EvalDuration);

internal sealed record OllamaGenerateFinal(
    string Model, string CreatedAt, string Response, bool Done, string DoneReason, int[] Context,
    long TotalDuration, long LoadDuration, int PromptEvalCount, long PromptEvalDuration, int EvalCount, long EvalDuration);

internal sealed record OllamaErrorBody(string Error);

internal sealed record OllamaModelDetails(
    string ParentModel, string Format, string Family, IReadOnlyList<string> Families, string ParameterSize, string QuantizationLevel);

internal sealed record OllamaModelEntry(string Name, string Model, DateTimeOffset ModifiedAt, long Size, string Digest, OllamaModelDetails Details);

internal sealed record OllamaTags(IReadOnlyList<OllamaModelEntry> Models);

internal sealed record OllamaRunningModel(
    string Name, string Model, long Size, string Digest, OllamaModelDetails Details, DateTimeOffset ExpiresAt, long SizeVram);

internal sealed record OllamaRunning(IReadOnlyList<OllamaRunningModel> Models);

internal sealed record OllamaVersion(string Version);

internal sealed record OllamaEmbedResult(string Model, IReadOnlyList<float[]> Embeddings, long TotalDuration, long LoadDuration, int PromptEvalCount);

internal sealed record OllamaLegacyEmbedding(float[] Embedding);

internal sealed record OllamaShowResult(string Modelfile, string Parameters, string Template, OllamaModelDetails Details, DateTimeOffset ModifiedAt);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(OllamaChatChunk))]
[JsonSerializable(typeof(OllamaGenerateChunk))]
[JsonSerializable(typeof(OllamaChatFinal))]
[JsonSerializable(typeof(OllamaGenerateFinal))]
[JsonSerializable(typeof(OllamaErrorBody))]
[JsonSerializable(typeof(OllamaTags))]
[JsonSerializable(typeof(OllamaRunning))]
[JsonSerializable(typeof(OllamaVersion))]
[JsonSerializable(typeof(OllamaEmbedResult))]
[JsonSerializable(typeof(OllamaLegacyEmbedding))]
[JsonSerializable(typeof(OllamaShowResult))]
internal sealed partial class OllamaJson : JsonSerializerContext
{
    /// <summary>Ollama writes apostrophes as they are (<c>model 'x' not found</c>), and clients compare such texts.</summary>
    /// <remarks>Options spelled out rather than copied from <c>Default</c>: static initializers of the two halves of
    /// this partial class run in no defined order, so <c>Default</c> may not exist yet.</remarks>
    public static OllamaJson Wire { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
