using System.Text.Json;
using System.Text.Json.Serialization;

namespace Anteroom.Simulator.OpenAI;

// The parts of the OpenAI-compatible request and response bodies the simulator reads or writes.

internal sealed class ChatCompletionRequest
{
    public string? Model { get; set; }

    public List<ChatMessageInput>? Messages { get; set; }

    public bool? Stream { get; set; }

    public StreamOptions? StreamOptions { get; set; }

    public int? MaxTokens { get; set; }

    public int? MaxCompletionTokens { get; set; }
}

internal sealed class ChatMessageInput
{
    public string? Role { get; set; }

    /// <summary>A string, an array of content parts, or null (an assistant turn that only called tools).</summary>
    public JsonElement Content { get; set; }
}

internal sealed class StreamOptions
{
    public bool? IncludeUsage { get; set; }
}

internal sealed class CompletionRequest
{
    public string? Model { get; set; }

    /// <summary>A string, an array of strings, an array of token ids, or an array of such arrays.</summary>
    public JsonElement Prompt { get; set; }

    public bool? Stream { get; set; }

    public StreamOptions? StreamOptions { get; set; }

    public int? MaxTokens { get; set; }
}

internal sealed class EmbeddingRequest
{
    public string? Model { get; set; }

    public JsonElement Input { get; set; }

    public string? EncodingFormat { get; set; }
}

internal sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record ChatCompletion(string Id, long Created, string Model, List<ChatChoice> Choices, Usage Usage)
{
    public string Object => "chat.completion";
}

internal sealed record AssistantMessage(string Role, string Content);

internal sealed record ChatChoice(int Index, AssistantMessage Message, string FinishReason);

internal sealed record ChatCompletionChunk(string Id, long Created, string Model, List<ChunkChoice> Choices, Usage? Usage = null)
{
    public string Object => "chat.completion.chunk";
}

internal sealed record ChunkDelta(string? Role = null, string? Content = null);

internal sealed record ChunkChoice(int Index, ChunkDelta Delta)
{
    // Present as null on every chunk but the last: the SDKs read its absence and its null alike, but vLLM sends null.
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; init; }
}

internal sealed record TextCompletion(string Id, long Created, string Model, List<TextChoice> Choices, Usage? Usage = null)
{
    public string Object => "text_completion";
}

internal sealed record TextChoice(string Text, int Index)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public object? Logprobs { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FinishReason { get; init; }
}

internal sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);

internal sealed record EmbeddingItem<TVector>(TVector Embedding, int Index)
{
    public string Object => "embedding";
}

internal sealed record EmbeddingList<TVector>(List<EmbeddingItem<TVector>> Data, string Model, EmbeddingUsage Usage)
{
    public string Object => "list";
}

internal sealed record ModelCard(string Id, long Created, string OwnedBy)
{
    public string Object => "model";
}

internal sealed record ModelList(List<ModelCard> Data)
{
    public string Object => "list";
}

internal sealed record OpenAIError(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

internal sealed record OpenAIErrorBody(OpenAIError Error);
