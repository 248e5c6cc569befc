using System.Text.Json.Serialization;

namespace Anteroom.DropIn;

// The OpenAI API's JSON shapes as the official SDKs parse them.

internal sealed record OpenAIErrorDetail(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

internal sealed record OpenAIError(OpenAIErrorDetail Error);

internal sealed record OpenAIUsage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record ChunkDelta(string? Role, string? Content);

internal sealed record ChunkChoice(
    int Index,
    ChunkDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ChatCompletionChunk(string Id, long Created, string Model, IReadOnlyList<ChunkChoice> Choices, OpenAIUsage? Usage)
{
    public string Object => "chat.completion.chunk";
}

internal sealed record TextChoice(
    int Index,
    string Text,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record TextCompletion(string Id, long Created, string Model, IReadOnlyList<TextChoice> Choices, OpenAIUsage? Usage)
{
    public string Object => "text_completion";
}

internal sealed record AssistantMessage(string Content)
{
    public string Role => "assistant";
}

internal sealed record MessageChoice(int Index, AssistantMessage Message, string FinishReason);

internal sealed record ChatCompletion(string Id, long Created, string Model, IReadOnlyList<MessageChoice> Choices, OpenAIUsage Usage)
{
    public string Object => "chat.completion";
}

internal sealed record FloatEmbedding(float[] Embedding, int Index)
{
    public string Object => "embedding";
}

internal sealed record Base64Embedding(string Embedding, int Index)
{
    public string Object => "embedding";
}

internal sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);

internal sealed record FloatEmbeddingList(IReadOnlyList<FloatEmbedding> Data, string Model, EmbeddingUsage Usage)
{
    public string Object => "list";
}

internal sealed record Base64EmbeddingList(IReadOnlyList<Base64Embedding> Data, string Model, EmbeddingUsage Usage)
{
    public string Object => "list";
}

internal sealed record OpenAIModel(string Id, long Created, string OwnedBy)
{
    public string Object => "model";
}

internal sealed record OpenAIModelList(IReadOnlyList<OpenAIModel> Data)
{
    public string Object => "list";
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OpenAIError))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(TextCompletion))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(FloatEmbeddingList))]
[JsonSerializable(typeof(Base64EmbeddingList))]
[JsonSerializable(typeof(OpenAIModel))]
[JsonSerializable(typeof(OpenAIModelList))]
internal sealed partial class OpenAIJson : JsonSerializerContext;
