using System.Text.Json;
using Anteroom.Simulator.Embeddings;
using Anteroom.Simulator.Generation;
using Anteroom.Simulator.Http;
using Anteroom.Simulator.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Anteroom.Simulator.Ollama;

/// <summary>Ollama's native routes under <c>/api</c> and its banner at <c>/</c>.</summary>
internal sealed class OllamaApi(Simulation simulation)
{
    public const string Version = "0.12.0";
    private const string Banner = "Ollama is running";
    private static readonly TimeSpan KeepAlive = TimeSpan.FromMinutes(5);

    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], context => BannerAsync(context));
        routes.MapPost("/api/chat", context => ChatAsync(context));
        routes.MapPost("/api/generate", context => GenerateAsync(context));
        routes.MapGet("/api/tags", context => TagsAsync(context));
        routes.MapGet("/api/ps", context => RunningAsync(context));
        routes.MapGet("/api/version", context => JsonResponse.WriteAsync(context, 200, new OllamaVersion(Version), SimulatorJson.Wire.OllamaVersion));
        routes.MapPost("/api/show", context => ShowAsync(context));
        routes.MapPost("/api/embed", context => EmbedAsync(context));
        routes.MapPost("/api/embeddings", context => LegacyEmbeddingAsync(context));
    }

    private static Task BannerAsync(HttpContext http)
    {
        http.Response.ContentType = "text/plain; charset=utf-8";
        http.Response.ContentLength = Banner.Length;
        return HttpMethods.IsHead(http.Request.Method) ? Task.CompletedTask : http.Response.WriteAsync(Banner);
    }

    private async Task ChatAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.OllamaChatRequest);
        if (body.Value is not { } request)
        {
            await OllamaErrors.WriteAsync(http, 400, body.Error!);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;

        // An empty conversation only loads the model, and Ollama answers it at once.
        if (request.Messages is null or [])
        {
            var loaded = OllamaFrames.Chat(model, Now, "", null) with { Done = true, DoneReason = "load" };
            await JsonResponse.WriteAsync(http, 200, loaded, SimulatorJson.Wire.OllamaChatResponse);
            return;
        }

        var characters = request.Messages.Sum(message => (long)(message?.Content?.Length ?? 0));
        await RunAsync(http, OllamaShape.Chat, model, characters, request.Stream, request.Options);
    }

    private async Task GenerateAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.OllamaGenerateRequest);
        if (body.Value is not { } request)
        {
            await OllamaErrors.WriteAsync(http, 400, body.Error!);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;

        if (string.IsNullOrEmpty(request.Prompt))
        {
            var loaded = OllamaFrames.Generate(model, Now, "", null) with { Done = true, DoneReason = "load" };
            await JsonResponse.WriteAsync(http, 200, loaded, SimulatorJson.Wire.OllamaGenerateResponse);
            return;
        }

        var characters = (long)request.Prompt.Length + (request.System?.Length ?? 0);
        await RunAsync(http, OllamaShape.Generate, model, characters, request.Stream, request.Options);
    }

    private Task RunAsync(HttpContext http, OllamaShape shape, string model, long promptCharacters, bool? stream, OllamaRequestOptions? options)
    {
        // num_predict of -1 (endless) or -2 (fill the context) sets no cap of its own.
        var plan = simulation.Planner.Plan(options?.NumPredict is > 0 and var limit ? limit : null);
        IGenerationWriter writer = stream ?? true
            ? new OllamaStreamWriter(http, shape, model, simulation.Time)
            : new OllamaSingleWriter(http, shape, model, simulation.Time);
        return GenerationRunner.RunAsync(simulation, http, new GenerationRequest(TokenEstimate.FromCharacters(promptCharacters), plan), writer);
    }

    private Task TagsAsync(HttpContext http)
    {
        var models = simulation.Catalog.Models.Select(model => Entry(model) with { ModifiedAt = ModelCatalog.ModifiedAt }).ToList();
        return JsonResponse.WriteAsync(http, 200, new OllamaModelList(models), SimulatorJson.Wire.OllamaModelList);
    }

    // The simulator has no cold start, so every model it serves is always loaded.
    private Task RunningAsync(HttpContext http)
    {
        var expiresAt = Now + KeepAlive;
        var models = simulation.Catalog.Models
            .Select(model => Entry(model) with { ExpiresAt = expiresAt, SizeVram = model.Size, ContextLength = 4096 })
            .ToList();
        return JsonResponse.WriteAsync(http, 200, new OllamaModelList(models), SimulatorJson.Wire.OllamaModelList);
    }

    private async Task ShowAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.OllamaShowRequest);
        if (body.Value is not { } request)
        {
            await OllamaErrors.WriteAsync(http, 400, body.Error!);
            return;
        }

        if (await RefuseModelAsync(http, request.Model ?? request.Name) is null)
            return;
        var model = simulation.Catalog.Find(request.Model ?? request.Name)!;
        var show = new OllamaShowResponse
        {
            Modelfile = $"# Modelfile of a model simulated by Anteroom\nFROM {model.Name}\nTEMPLATE \"\"\"{Template}\"\"\"\nPARAMETER stop \"user:\"\n",
            Parameters = "stop \"user:\"",
            Template = Template,
            Details = Details(model),
            ModelInfo = new Dictionary<string, object>
            {
                ["general.architecture"] = model.Family,
                ["general.basename"] = model.Name,
                ["general.parameter_count"] = model.ParameterCount,
                [$"{model.Family}.context_length"] = SimulatedModel.ContextLength,
                [$"{model.Family}.embedding_length"] = EmbeddingVectors.Dimensions,
            },
            Capabilities = ["completion"],
            ModifiedAt = ModelCatalog.ModifiedAt,
        };
        await JsonResponse.WriteAsync(http, 200, show, SimulatorJson.Wire.OllamaShowResponse);
    }

    private async Task EmbedAsync(HttpContext http)
    {
        var started = simulation.Time.GetTimestamp();
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.OllamaEmbedRequest);
        if (body.Value is not { } request)
        {
            await OllamaErrors.WriteAsync(http, 400, body.Error!);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is not { } model)
            return;

        if (Texts(request.Input) is not { } texts)
        {
            await OllamaErrors.WriteAsync(http, 400, "invalid input type: expected a string or an array of strings");
            return;
        }

        await Task.Delay(simulation.Timing.Embedding, simulation.Time, http.RequestAborted);
        var response = new OllamaEmbedResponse
        {
            Model = model,
            Embeddings = texts.Select(EmbeddingVectors.For).ToList(),
            TotalDuration = simulation.Time.GetElapsedTime(started).Ticks * 100,
            LoadDuration = 0,
            PromptEvalCount = texts.Sum(text => TokenEstimate.FromCharacters(text.Length)),
        };
        await JsonResponse.WriteAsync(http, 200, response, SimulatorJson.Wire.OllamaEmbedResponse);
    }

    private async Task LegacyEmbeddingAsync(HttpContext http)
    {
        var body = await RequestBody.ReadAsync(http, SimulatorJson.Wire.OllamaLegacyEmbeddingRequest);
        if (body.Value is not { } request)
        {
            await OllamaErrors.WriteAsync(http, 400, body.Error!);
            return;
        }

        if (await RefuseModelAsync(http, request.Model) is null)
            return;

        await Task.Delay(simulation.Timing.Embedding, simulation.Time, http.RequestAborted);
        var vector = string.IsNullOrEmpty(request.Prompt) ? [] : EmbeddingVectors.For(request.Prompt);
        await JsonResponse.WriteAsync(http, 200, new OllamaLegacyEmbeddingResponse(vector), SimulatorJson.Wire.OllamaLegacyEmbeddingResponse);
    }

    /// <summary>The model name as the client gave it, or null after answering 400 (missing) or 404 (unknown).</summary>
    private async Task<string?> RefuseModelAsync(HttpContext http, string? model)
    {
        if (string.IsNullOrWhiteSpace(model))
        {
            await OllamaErrors.WriteAsync(http, 400, "model is required");
            return null;
        }

        if (simulation.Catalog.Find(model) is null)
        {
            await OllamaErrors.WriteAsync(http, 404, OllamaErrors.ModelNotFound(model));
            return null;
        }

        return model;
    }

    private static List<string>? Texts(JsonElement input) => input.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => [],
        JsonValueKind.String => [input.GetString()!],
        JsonValueKind.Array when input.EnumerateArray().All(item => item.ValueKind == JsonValueKind.String) =>
            input.EnumerateArray().Select(item => item.GetString()!).ToList(),
        _ => null,
    };

    private DateTime Now => simulation.Time.GetUtcNow().UtcDateTime;

    // A plain template of the simulator's own: nothing reads it, clients only display it.
    private const string Template = "{{ if .System }}system: {{ .System }}\n{{ end }}{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant: ";

    private static OllamaModelDetails Details(SimulatedModel model) => new()
    {
        Format = SimulatedModel.Format,
        Family = model.Family,
        Families = [model.Family],
        ParameterSize = model.ParameterSize,
        QuantizationLevel = SimulatedModel.Quantization,
    };

    private static OllamaModelEntry Entry(SimulatedModel model) => new()
    {
        Name = model.Name,
        Model = model.Name,
        Size = model.Size,
        Digest = model.Digest,
        Details = Details(model),
    };
}
