using System.Text.Json;

namespace Anteroom.Simulator.Ollama;

// The parts of Ollama's request and response bodies the simulator reads or writes; names follow its JSON.

internal sealed class OllamaChatRequest
{
    public string? Model { get; set; }

    public List<OllamaMessage>? Messages { get; set; }

    public bool? Stream { get; set; }

    public OllamaRequestOptions? Options { get; set; }
}

internal sealed class OllamaGenerateRequest
{
    public string? Model { get; set; }

    public string? Prompt { get; set; }

    public string? System { get; set; }

    public bool? Stream { get; set; }

    public OllamaRequestOptions? Options { get; set; }
}

internal sealed class OllamaRequestOptions
{
    public int? NumPredict { get; set; }
}

internal sealed class OllamaMessage
{
    public string? Role { get; set; }

    public string? Content { get; set; }
}

internal sealed class OllamaEmbedRequest
{
    public string? Model { get; set; }

    public JsonElement Input { get; set; }
}

internal sealed class OllamaLegacyEmbeddingRequest
{
    public string? Model { get; set; }

    public string? Prompt { get; set; }
}

internal sealed class OllamaShowRequest
{
    public string? Model { get; set; }

    public string? Name { get; set; }
}

internal sealed record OllamaChatResponse
{
    public required string Model { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required OllamaMessage Message { get; init; }

    public string? DoneReason { get; init; }

    public required bool Done { get; init; }

    public long? TotalDuration { get; init; }

    public long? LoadDuration { get; init; }

    public int? PromptEvalCount { get; init; }

    public long? PromptEvalDuration { get; init; }

    public int? EvalCount { get; init; }

    public long? EvalDuration { get; init; }
}

internal sealed record OllamaGenerateResponse
{
    public required string Model { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required string Response { get; init; }

    public string? DoneReason { get; init; }

    public required bool Done { get; init; }

    public int[]? Context { get; init; }

    public long? TotalDuration { get; init; }

    public long? LoadDuration { get; init; }

    public int? PromptEvalCount { get; init; }

    public long? PromptEvalDuration { get; init; }

    public int? EvalCount { get; init; }

    public long? EvalDuration { get; init; }
}

internal sealed record OllamaError(string Error);

internal sealed record OllamaModelDetails
{
    public string ParentModel { get; init; } = "";

    public required string Format { get; init; }

    public required string Family { get; init; }

    public required string[] Families { get; init; }

    public required string ParameterSize { get; init; }

    public required string QuantizationLevel { get; init; }
}

internal sealed record OllamaModelEntry
{
    public required string Name { get; init; }

    public required string Model { get; init; }

    public DateTime? ModifiedAt { get; init; }

    public required long Size { get; init; }

    public required string Digest { get; init; }

    public required OllamaModelDetails Details { get; init; }

    public DateTime? ExpiresAt { get; init; }

    public long? SizeVram { get; init; }

    public int? ContextLength { get; init; }
}

internal sealed record OllamaModelList(List<OllamaModelEntry> Models);

internal sealed record OllamaVersion(string Version);

internal sealed record OllamaShowResponse
{
    public required string Modelfile { get; init; }

    public required string Parameters { get; init; }

    public required string Template { get; init; }

    public required OllamaModelDetails Details { get; init; }

    public required Dictionary<string, object> ModelInfo { get; init; }

    public required string[] Capabilities { get; init; }

    public required DateTime ModifiedAt { get; init; }
}

internal sealed record OllamaEmbedResponse
{
    public required string Model { get; init; }

    public required List<float[]> Embeddings { get; init; }

    public required long TotalDuration { get; init; }

    public required long LoadDuration { get; init; }

    public required int PromptEvalCount { get; init; }
}

internal sealed record OllamaLegacyEmbeddingResponse(float[] Embedding);
