namespace Anteroom.Simulator.OpenAI;

/// <summary>Which OpenAI endpoint a generation answers.</summary>
internal enum OpenAIShape
{
    /// <summary><c>/v1/chat/completions</c>: <c>chat.completion(.chunk)</c> with messages and deltas.</summary>
    Chat,

    /// <summary><c>/v1/completions</c>: <c>text_completion</c> with plain text.</summary>
    Text,
}

/// <summary>What every chunk and answer of one OpenAI generation repeats.</summary>
/// <param name="Shape">Chat or plain text completion.</param>
/// <param name="Id">Equal on every chunk: <c>chatcmpl-…</c> or <c>cmpl-…</c>.</param>
/// <param name="Created">Unix seconds of the request's arrival, equal on every chunk.</param>
/// <param name="Model">The model as the client named it.</param>
internal sealed record OpenAIStreamHeader(OpenAIShape Shape, string Id, long Created, string Model);
