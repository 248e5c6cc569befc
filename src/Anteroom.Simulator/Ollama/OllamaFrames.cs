using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;

namespace Anteroom.Simulator.Ollama;

/// <summary>Which Ollama endpoint a generation answers: chat carries <c>message</c>, generate <c>response</c> and <c>context</c>.</summary>
internal enum OllamaShape
{
    Chat,
    Generate,
}

/// <summary>Builds and writes the chunks both Ollama writers share.</summary>
internal static class OllamaFrames
{
    public const string Role = "assistant";

    public static void Write(FrameWriter frames, OllamaShape shape, string model, DateTime createdAt, string text, GenerationResult? done)
    {
        if (shape == OllamaShape.Chat)
            frames.Frame([], Chat(model, createdAt, text, done), SimulatorJson.Wire.OllamaChatResponse, "\n"u8);
        else
            frames.Frame([], Generate(model, createdAt, text, done), SimulatorJson.Wire.OllamaGenerateResponse, "\n"u8);
    }

    public static OllamaChatResponse Chat(string model, DateTime createdAt, string text, GenerationResult? done) => new()
    {
        Model = model,
        CreatedAt = createdAt,
        Message = new OllamaMessage { Role = Role, Content = text },
        Done = done is not null,
        DoneReason = done?.FinishReason,
        TotalDuration = Nanoseconds(done?.Total),
        LoadDuration = Nanoseconds(done?.Load),
        PromptEvalCount = done?.PromptTokens,
        PromptEvalDuration = Nanoseconds(done?.PromptEvaluation),
        EvalCount = done?.CompletionTokens,
        EvalDuration = Nanoseconds(done?.Evaluation),
    };

    public static OllamaGenerateResponse Generate(string model, DateTime createdAt, string text, GenerationResult? done) => new()
    {
        Model = model,
        CreatedAt = createdAt,
        Response = text,
        Done = done is not null,
        DoneReason = done?.FinishReason,
        Context = done is null ? null : Context(done),
        TotalDuration = Nanoseconds(done?.Total),
        LoadDuration = Nanoseconds(done?.Load),
        PromptEvalCount = done?.PromptTokens,
        PromptEvalDuration = Nanoseconds(done?.PromptEvaluation),
        EvalCount = done?.CompletionTokens,
        EvalDuration = Nanoseconds(done?.Evaluation),
    };

    private static long? Nanoseconds(TimeSpan? span) => span is { } s ? Math.Max(0, s.Ticks) * 100 : null;

    /// <summary>Token ids standing for the prompt and the answer, which a client may send back to continue.</summary>
    private static int[] Context(GenerationResult done)
    {
        var ids = new int[done.PromptTokens + done.CompletionTokens];
        var source = new WordSource(~done.TextSeed);
        for (var i = 0; i < ids.Length; i++)
            ids[i] = source.NextTokenId();
        return ids;
    }
}
