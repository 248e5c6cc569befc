using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Anteroom.Backends;
using Anteroom.Gateway;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;

namespace Anteroom.DropIn;

/// <summary>The Ollama API under <c>/api</c>: what ollama-js and OllamaSharp send and parse, through Anteroom's queue.</summary>
internal static class OllamaEndpoints
{
    /// <summary>The Ollama version Anteroom answers as; clients use it to pick features.</summary>
    public const string CompatibleVersion = "0.12.0";

    private const string QueueFullMessage = "server busy, please try again.  maximum pending requests exceeded";

    public static void MapOllamaApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/chat", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OllamaShape.Chat));
        app.MapPost("/api/generate", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OllamaShape.Generate));
        app.MapPost("/api/embed", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OllamaShape.Embed));
        app.MapPost("/api/embeddings", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OllamaShape.LegacyEmbedding));
        app.MapGet("/api/tags", async (HttpContext context, DropInDesk desk) =>
            Results.Json(new OllamaTags([.. (await desk.HealthyModelsAsync(context.Caller(), context.RequestAborted)).Select(model => Entry(model, desk.StartedAt))]), OllamaJson.Wire.OllamaTags));
        app.MapGet("/api/ps", RunningAsync);
        app.MapGet("/api/version", () => Results.Json(new OllamaVersion(CompatibleVersion), OllamaJson.Wire.OllamaVersion));
        app.MapPost("/api/show", ShowAsync);
    }

    /// <summary>What Ollama answers at its root, for clients that check the server is up.</summary>
    public static IResult Root() => Results.Text("Ollama is running", "text/plain; charset=utf-8");

    private static async Task HandleAsync(HttpContext context, DropInDesk desk, OllamaShape shape)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            await Error(problem!.Status, problem.Message).ExecuteAsync(context);
            return;
        }

        using (body)
        {
            var fields = new FieldReader(body.Root);
            var parsed = Read(fields, shape);
            if (!fields.IsValid)
            {
                await Error(StatusCodes.Status400BadRequest, fields.Problem!).ExecuteAsync(context);
                return;
            }

            if (parsed.LoadOnly)
            {
                // An empty prompt asks Ollama to load the model: nothing to queue, but the same model and tier
                // checks as a generation, so it never tells a caller a model exists that it may not use.
                var refusal = await desk.CheckModelAsync(context.Caller(), parsed.Generation.Model, context.RequestAborted);
                await (refusal is null ? Loaded(parsed, shape) : Refused(refusal, parsed.Generation.Model)).ExecuteAsync(context);
                return;
            }

            var arrival = new Arrival(context.Caller(), parsed.Generation)
            {
                Protocol = ClientProtocol.Ollama,
                Relay = new RelayPayload(RelayPath(shape), body.Bytes, parsed.Stream),
                EmbeddingInputs = parsed.EmbeddingInputs,
            };
            var reply = await desk.Reception.AdmitAsync(arrival);
            // This connection's hold on the request: released when the handler ends, however it ends.
            using var hold = reply.Hold;
            if (reply.Request is not { } request)
            {
                await Refused(reply.Denial!, parsed.Generation.Model).ExecuteAsync(context);
                return;
            }

            await new OllamaResponder(context, request, desk, shape, parsed.Stream).RespondAsync();
        }
    }

    private static string RelayPath(OllamaShape shape) => shape switch
    {
        OllamaShape.Chat => "api/chat",
        OllamaShape.Generate => "api/generate",
        OllamaShape.Embed => "api/embed",
        _ => "api/embeddings",
    };

    private static OllamaRequest Read(FieldReader fields, OllamaShape shape)
    {
        string model = fields.String("model", required: true) ?? "";
        var options = fields.Object("options");
        switch (shape)
        {
            case OllamaShape.Embed:
                var inputs = fields.Strings("input", required: true) ?? [];
                return new OllamaRequest(new GenerationRequest { Model = model, Messages = [] }, false, inputs, false);
            case OllamaShape.LegacyEmbedding:
                string text = fields.String("prompt", required: true) ?? "";
                return new OllamaRequest(new GenerationRequest { Model = model, Messages = [] }, false, [text], false);
        }

        bool stream = fields.Bool("stream") ?? true;
        var messages = new List<ChatMessage>();
        string? prompt = null;
        if (shape == OllamaShape.Chat)
        {
            messages = ReadMessages(fields) ?? [];
        }
        else
        {
            prompt = fields.String("prompt") ?? "";
        }

        var generation = new GenerationRequest
        {
            Model = model,
            Messages = messages,
            Kind = shape == OllamaShape.Chat ? GenerationKind.Chat : GenerationKind.Completion,
            Prompt = prompt,
            System = shape == OllamaShape.Generate ? fields.String("system") : null,
            MaxOutputTokens = PositiveOrNull(options?.Int("num_predict", -2, int.MaxValue)),
            Temperature = options?.Number("temperature", 0, 100),
            TopP = options?.Number("top_p", 0, 1),
            Seed = options?.Int("seed", int.MinValue, int.MaxValue),
            Stop = options?.Strings("stop"),
        };
        fields.Adopt("options", options);
        bool loadOnly = shape == OllamaShape.Chat ? messages.Count == 0 : string.IsNullOrEmpty(prompt);
        return new OllamaRequest(generation, stream, null, loadOnly);
    }

    // num_predict -1 (or -2) means "no limit" in Ollama.
    private static int? PositiveOrNull(int? value) => value is > 0 ? value : null;

    private static List<ChatMessage>? ReadMessages(FieldReader fields)
    {
        if (!fields.Has("messages"))
        {
            return null;
        }

        var element = fields.Element("messages");
        if (element.ValueKind != JsonValueKind.Array)
        {
            fields.Fail("messages", "'messages' must be an array of {\"role\", \"content\"} objects.");
            return null;
        }

        var messages = new List<ChatMessage>();
        int index = 0;
        foreach (var item in element.EnumerateArray())
        {
            string field = $"messages[{index++}]";
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
            {
                fields.Fail(field, $"'{field}' must be an object with a string 'role'.");
                return null;
            }

            string content = "";
            if (item.TryGetProperty("content", out var value) && value.ValueKind != JsonValueKind.Null)
            {
                if (value.ValueKind != JsonValueKind.String)
                {
                    fields.Fail($"{field}.content", $"'{field}.content' must be a string.");
                    return null;
                }

                content = value.GetString()!;
            }

            messages.Add(new ChatMessage(role.GetString()!, content));
        }

        return messages;
    }

    private static IResult Loaded(OllamaRequest parsed, OllamaShape shape)
    {
        string createdAt = OllamaResponder.Timestamp(DateTimeOffset.UtcNow);
        string model = parsed.Generation.Model;
        return shape == OllamaShape.Chat
            ? Results.Json(new OllamaChatFinal(model, createdAt, new OllamaMessage("assistant", ""), true, "load", 0, 0, 0, 0, 0, 0), OllamaJson.Wire.OllamaChatFinal)
            : Results.Json(new OllamaGenerateFinal(model, createdAt, "", true, "load", [], 0, 0, 0, 0, 0, 0), OllamaJson.Wire.OllamaGenerateFinal);
    }

    private static async Task<IResult> RunningAsync(HttpContext context, DropInDesk desk)
    {
        var expires = desk.Time.GetUtcNow().AddMinutes(5);
        var caller = context.Caller();
        var models = (await desk.Queue.GetRunningAsync(context.RequestAborted)).Select(running => running.Model).Distinct(StringComparer.Ordinal).Where(caller.MayUse)
            .Select(model =>
            {
                var entry = Entry(model, desk.StartedAt);
                return new OllamaRunningModel(entry.Name, entry.Model, entry.Size, entry.Digest, entry.Details, expires, 0);
            }).ToList();
        return Results.Json(new OllamaRunning(models), OllamaJson.Wire.OllamaRunning);
    }

    /// <summary>Asks a healthy Ollama backend that has the model; for models only OpenAI backends serve, describes it.</summary>
    private static async Task<IResult> ShowAsync(HttpContext context, DropInDesk desk, BackendPool pool, IRequestQueue queue)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            return Error(problem!.Status, problem.Message);
        }

        using (body)
        {
            var fields = new FieldReader(body.Root);
            string? model = fields.String("model") ?? fields.String("name");
            if (string.IsNullOrEmpty(model))
            {
                return Error(StatusCodes.Status400BadRequest, "'model' is required.");
            }

            var backends = (await queue.GetSnapshotAsync(context.RequestAborted)).Backends.Where(b => b.Healthy && b.Models.Contains(model)).ToList();
            if (backends.Count == 0 || !context.Caller().MayUse(model))
            {
                return Error(StatusCodes.Status404NotFound, $"model '{model}' not found");
            }

            var ollama = backends.FirstOrDefault(b => pool.Protocol(b.Name) == BackendProtocol.Ollama);
            if (ollama is not null)
            {
                var relayed = await RelayOnceAsync(pool.Client(ollama.Name), new RelayRequest("api/show", body.Bytes, false), context.RequestAborted);
                if (relayed is not null)
                {
                    return relayed;
                }
            }

            var entry = Entry(model, desk.StartedAt);
            return Results.Json(
                new OllamaShowResult($"FROM {model}\n", "", "{{ .Prompt }}", entry.Details, desk.StartedAt), OllamaJson.Wire.OllamaShowResult);
        }
    }

    private static async Task<IResult?> RelayOnceAsync(IModelServerClient client, RelayRequest request, CancellationToken cancellationToken)
    {
        int status = StatusCodes.Status502BadGateway;
        string? contentType = null;
        var bytes = new MemoryStream();
        await foreach (var chunk in client.RelayAsync(request, cancellationToken))
        {
            switch (chunk.Kind)
            {
                case RelayChunkKind.Head:
                    (status, contentType) = (chunk.StatusCode, chunk.ContentType);
                    break;
                case RelayChunkKind.Data:
                    bytes.Write(chunk.Bytes.Span);
                    break;
                case RelayChunkKind.Failed when !chunk.ErrorWasRelayed:
                    return null;
            }
        }

        return Results.Text(bytes.ToArray(), contentType ?? "application/json; charset=utf-8", status);
    }

    internal static OllamaModelEntry Entry(string model, DateTimeOffset modifiedAt)
    {
        string name = model.Contains(':', StringComparison.Ordinal) ? model : model + ":latest";
        // "llama3.1:8b" is of the "llama" family, as Ollama itself reports it.
        string family = new string([.. name.TakeWhile(char.IsAsciiLetter)]);
        string tag = name[(name.IndexOf(':', StringComparison.Ordinal) + 1)..];
        string digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        var details = new OllamaModelDetails("", "gguf", family, [family], tag.EndsWith('b') ? tag.ToUpperInvariant() : "", "");
        return new OllamaModelEntry(name, name, modifiedAt, 0, digest, details);
    }

    internal static IResult Refused(Denial denial, string model)
    {
        var result = denial.Code switch
        {
            "model_not_found" => Error(StatusCodes.Status404NotFound, $"model '{model}' not found"),
            // What Ollama itself answers when its queue is full, so clients that recognise it back off.
            "queue_full" => Error(StatusCodes.Status503ServiceUnavailable, QueueFullMessage),
            _ => Error(denial.Status, denial.Message),
        };
        return RetryAfterResult.Wrap(result, denial.RetryAfter);
    }

    internal static IResult Error(int status, string message) =>
        Results.Json(new OllamaErrorBody(message), OllamaJson.Wire.OllamaErrorBody, statusCode: status);
}

internal enum OllamaShape
{
    Chat,
    Generate,
    Embed,
    LegacyEmbedding,
}

/// <summary>What an Ollama request asked for beyond the generation itself.</summary>
internal sealed record OllamaRequest(GenerationRequest Generation, bool Stream, IReadOnlyList<string>? EmbeddingInputs, bool LoadOnly);
