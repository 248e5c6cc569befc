namespace Anteroom.Simulator.Generation;

/// <summary>A generation to run, independent of the protocol that asked for it.</summary>
/// <param name="PromptTokens">Estimated prompt length in tokens.</param>
/// <param name="Plan">The random choices for this generation, drawn when the request arrived.</param>
internal sealed record GenerationRequest(int PromptTokens, GenerationPlan Plan);

/// <summary>How a finished generation went, with Ollama's timing breakdown.</summary>
internal sealed record GenerationResult(
    int PromptTokens,
    int CompletionTokens,
    string FinishReason,
    TimeSpan Total,
    TimeSpan Load,
    TimeSpan PromptEvaluation,
    TimeSpan Evaluation,
    uint TextSeed);

/// <summary>
/// Puts a generation on the wire in one protocol's shape (streaming or not). Nothing reaches the client before
/// the first token, so a failure before it can still be an honest HTTP status.
/// </summary>
internal interface IGenerationWriter
{
    ValueTask TokenAsync(string token, CancellationToken cancellationToken);

    ValueTask DoneAsync(GenerationResult result, CancellationToken cancellationToken);

    /// <summary>An HTTP 500 error when nothing was sent yet, otherwise the protocol's in-stream error.</summary>
    ValueTask FailAsync(string message, CancellationToken cancellationToken);

    /// <summary>The refusal for a full queue.</summary>
    Task BusyAsync();
}
