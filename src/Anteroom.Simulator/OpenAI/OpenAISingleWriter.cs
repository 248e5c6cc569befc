using System.Text;
using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.OpenAI;

/// <summary>OpenAI's non-streaming answer: one object with the whole text and the usage.</summary>
internal sealed class OpenAISingleWriter(HttpContext http, OpenAIStreamHeader header) : IGenerationWriter
{
    private readonly StringBuilder _text = new();

    public ValueTask TokenAsync(string token, CancellationToken cancellationToken)
    {
        _text.Append(token);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DoneAsync(GenerationResult result, CancellationToken cancellationToken)
    {
        var usage = new Usage(result.PromptTokens, result.CompletionTokens, result.PromptTokens + result.CompletionTokens);
        var text = _text.ToString();
        if (header.Shape == OpenAIShape.Chat)
        {
            var choice = new ChatChoice(0, new AssistantMessage("assistant", text), result.FinishReason);
            var completion = new ChatCompletion(header.Id, header.Created, header.Model, [choice], usage);
            await JsonResponse.WriteAsync(http, StatusCodes.Status200OK, completion, SimulatorJson.Wire.ChatCompletion);
        }
        else
        {
            var completion = new TextCompletion(header.Id, header.Created, header.Model, [new TextChoice(text, 0) { FinishReason = result.FinishReason }], usage);
            await JsonResponse.WriteAsync(http, StatusCodes.Status200OK, completion, SimulatorJson.Wire.TextCompletion);
        }
    }

    // Nothing was sent yet, so even a failure after some tokens can still be an honest status.
    public async ValueTask FailAsync(string message, CancellationToken cancellationToken) =>
        await OpenAIErrors.ServerErrorAsync(http, message);

    public Task BusyAsync() => OpenAIErrors.BusyAsync(http);
}
