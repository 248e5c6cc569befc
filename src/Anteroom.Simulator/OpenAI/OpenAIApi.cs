using Anteroom.Simulator.Embeddings;
using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Anteroom.Simulator.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Anteroom.Simulator.OpenAI;

/// <summary>The OpenAI-compatible routes under <c>/v1</c>, as vLLM and Ollama serve them.</summary>
internal sealed class OpenAIApi(Simulation simulation)
{
    private const string OwnedBy = "anteroom";

    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/chat/completions", context => ChatAsync(context));
        routes.MapPost("/v1/completions", context => CompletionAsync(context));
        routes.MapPost("/v1/embeddings", context => EmbeddingsAsync(context));
        routes.MapGet("/v1/models", context => ModelsAsync(context));
        // Catch-all: model ids such as "org/name" contain slashes.
        routes.MapGet("/v1/models/{**id}", context => ModelAsync(context));
    }

    private async Task ChatAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.ChatCompletionRequest);
        if (body.Value is not { } request)
        {
            await OpenAIErrors.BadRequestAsync(http, body.Error!, body.Field);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;
        if (request.Messages is null or [])
        {
            await OpenAIErrors.MissingAsync(http, "messages");
            return;
        }

        long characters = 0;
        for (var i = 0; i < request.Messages.Count; i++)
        {
            var message = request.Messages[i];
            if (string.IsNullOrEmpty(message?.Role))
            {
                await OpenAIErrors.MissingAsync(http, $"messages[{i}].role");
                return;
            }

            if (OpenAIInputs.ContentCharacters(message.Content) is not { } length)
            {
                await OpenAIErrors.BadRequestAsync(http, $"Invalid type for 'messages[{i}].content': expected a string or an array of content parts.", $"messages[{i}].content");
                return;
            }

            characters += length;
        }

        if (await RefuseLimitAsync(http, "max_tokens", request.MaxTokens) || await RefuseLimitAsync(http, "max_completion_tokens", request.MaxCompletionTokens))
            return;

        // Both names of the limit are honoured; when a client sends both, the tighter one wins.
        var limit = (request.MaxTokens, request.MaxCompletionTokens) switch
        {
            ({ } a, { } b) => Math.Min(a, b),
            var (a, b) => a ?? b,
        };
        await RunAsync(http, OpenAIShape.Chat, "chatcmpl-", model, TokenEstimate.FromCharacters(characters), limit, request.Stream, request.StreamOptions);
    }

    private async Task CompletionAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.CompletionRequest);
        if (body.Value is not { } request)
        {
            await OpenAIErrors.BadRequestAsync(http, body.Error!, body.Field);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;
        if (request.Prompt.ValueKind is System.Text.Json.JsonValueKind.Undefined or System.Text.Json.JsonValueKind.Null)
        {
            await OpenAIErrors.MissingAsync(http, "prompt");
            return;
        }

        // Several prompts are answered as one: the simulator produces a single choice.
        if (OpenAIInputs.Pieces(request.Prompt) is not { } pieces)
        {
            await OpenAIErrors.BadRequestAsync(http, "Invalid type for 'prompt': expected a string, an array of strings or token ids.", "prompt");
            return;
        }

        if (await RefuseLimitAsync(http, "max_tokens", request.MaxTokens))
            return;
        await RunAsync(http, OpenAIShape.Text, "cmpl-", model, pieces.Sum(piece => piece.Tokens), request.MaxTokens, request.Stream, request.StreamOptions);
    }

    private Task RunAsync(HttpContext http, OpenAIShape shape, string idPrefix, string model, int promptTokens, int? limit, bool? stream, StreamOptions? streamOptions)
    {
        var plan = simulation.Planner.Plan(limit);
        var header = new OpenAIStreamHeader(shape, idPrefix + plan.Id, simulation.Time.GetUtcNow().ToUnixTimeSeconds(), model);
        IGenerationWriter writer = stream == true
            ? new OpenAIStreamWriter(http, header, streamOptions?.IncludeUsage == true)
            : new OpenAISingleWriter(http, header);
        return GenerationRunner.RunAsync(simulation, http, new GenerationRequest(promptTokens, plan), writer);
    }

    private async Task EmbeddingsAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.EmbeddingRequest);
        if (body.Value is not { } request)
        {
            await OpenAIErrors.BadRequestAsync(http, body.Error!, body.Field);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;
        if (request.Input.ValueKind is System.Text.Json.JsonValueKind.Undefined or System.Text.Json.JsonValueKind.Null)
        {
            await OpenAIErrors.MissingAsync(http, "input");
            return;
        }

        if (OpenAIInputs.Pieces(request.Input) is not { } pieces)
        {
            await OpenAIErrors.BadRequestAsync(http, "Invalid type for 'input': expected a string, an array of strings or token ids.", "input");
            return;
        }

        var base64 = request.EncodingFormat switch
        {
            null or "float" => false,
            "base64" => true,
            _ => (bool?)null,
        };
        if (base64 is null)
        {
            await OpenAIErrors.BadRequestAsync(http, $"Invalid value for 'encoding_format': expected 'float' or 'base64', not '{request.EncodingFormat}'.", "encoding_format");
            return;
        }

        await Task.Delay(simulation.Timing.Embedding, simulation.Time, http.RequestAborted);
        var vectors = pieces.Select(piece => EmbeddingVectors.For(piece.Text)).ToList();
        var tokens = pieces.Sum(piece => piece.Tokens);
        var usage = new EmbeddingUsage(tokens, tokens);
        if (base64.Value)
        {
            var data = vectors.Select((vector, index) => new EmbeddingItem<string>(EmbeddingVectors.ToBase64(vector), index)).ToList();
            await JsonResponse.WriteAsync(http, 200, new EmbeddingList<string>(data, model, usage), SimulatorJson.Wire.Base64EmbeddingList);
        }
        else
        {
            var data = vectors.Select((vector, index) => new EmbeddingItem<float[]>(vector, index)).ToList();
            await JsonResponse.WriteAsync(http, 200, new EmbeddingList<float[]>(data, model, usage), SimulatorJson.Wire.FloatEmbeddingList);
        }
    }

    private Task ModelsAsync(HttpContext http)
    {
        var cards = simulation.Catalog.Models.Select(Card).ToList();
        return JsonResponse.WriteAsync(http, 200, new ModelList(cards), SimulatorJson.Wire.ModelList);
    }

    private Task ModelAsync(HttpContext http)
    {
        var id = http.Request.RouteValues["id"] as string;
        return simulation.Catalog.Find(id) is { } model
            ? JsonResponse.WriteAsync(http, 200, Card(model), SimulatorJson.Wire.ModelCard)
            : OpenAIErrors.ModelNotFoundAsync(http, id ?? "");
    }

    private static ModelCard Card(SimulatedModel model) =>
        new(model.Name, new DateTimeOffset(ModelCatalog.ModifiedAt).ToUnixTimeSeconds(), OwnedBy);

    /// <summary>The model name as the client gave it, or null after answering 400 (missing) or 404 (unknown).</summary>
    private async Task<string?> RefuseModelAsync(HttpContext http, string? model)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            await OpenAIErrors.MissingAsync(http, "model");
            return null;
        }

        if (simulation.Catalog.Find(model) is null)
        {
            await OpenAIErrors.ModelNotFoundAsync(http, model);
            return null;
        }

        return model;
    }

    private static async Task<bool> RefuseLimitAsync(HttpContext http, string param, int? value)
    {
        if (value is null or >= 1)
            return false;
        await OpenAIErrors.BadRequestAsync(http, $"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got {value} instead.", param, "integer_below_min_value");
        return true;
    }
}
