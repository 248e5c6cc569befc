using System.Text.Json;
using Anteroom.Backends;
using Anteroom.Gateway;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Requests;
using Anteroom.Scheduling;

namespace Anteroom.DropIn;

/// <summary>
/// The OpenAI-compatible API under <c>/v1</c>: what the official SDKs send and parse, through Anteroom's queue.
/// </summary>
internal static class OpenAIEndpoints
{
    public static void MapOpenAIApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/chat/completions", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OpenAIShape.Chat));
        app.MapPost("/v1/completions", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OpenAIShape.Completion));
        app.MapPost("/v1/embeddings", (HttpContext context, DropInDesk desk) => HandleAsync(context, desk, OpenAIShape.Embedding));
        app.MapGet("/v1/models", async (HttpContext context, DropInDesk desk) =>
            Results.Json(new OpenAIModelList([.. (await desk.HealthyModelsAsync(context.Caller(), context.RequestAborted)).Select(desk.OpenAIModel)]), OpenAIJson.Default.OpenAIModelList));
        app.MapGet("/v1/models/{**id}", async (HttpContext context, string id, DropInDesk desk) => (await desk.HealthyModelsAsync(context.Caller(), context.RequestAborted)).Contains(id)
            ? Results.Json(desk.OpenAIModel(id), OpenAIJson.Default.OpenAIModel)
            : Error(StatusCodes.Status404NotFound, $"The model '{id}' does not exist.", "not_found_error", "model", "model_not_found"));
    }

    private static async Task HandleAsync(HttpContext context, DropInDesk desk, OpenAIShape shape)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            await Error(problem!.Status, problem.Message, "invalid_request_error", problem.Field, problem.Code).ExecuteAsync(context);
            return;
        }

        using (body)
        {
            var fields = new FieldReader(body.Root);
            var parsed = shape switch
            {
                OpenAIShape.Chat => ReadChat(fields),
                OpenAIShape.Completion => ReadCompletion(fields),
                _ => ReadEmbedding(fields),
            };
            // A trusted application names its end user in the standard `user` field; anyone else's is just metadata.
            string? endUser = fields.String("user");
            if (!fields.IsValid)
            {
                await Error(StatusCodes.Status400BadRequest, fields.Problem!, "invalid_request_error", fields.Field, null).ExecuteAsync(context);
                return;
            }

            var path = shape switch
            {
                OpenAIShape.Chat => "v1/chat/completions",
                OpenAIShape.Completion => "v1/completions",
                _ => "v1/embeddings",
            };
            if (endUser is not null && context.Caller().CanActForUsers && !Caller.IsValidEndUser(endUser))
            {
                await Error(StatusCodes.Status400BadRequest, $"'user' must be 1 to {Caller.MaxEndUserLength} printable characters.",
                    "invalid_request_error", "user", "invalid_end_user").ExecuteAsync(context);
                return;
            }

            var arrival = new Arrival(context.Caller().ActingFor(endUser), parsed.Generation)
            {
                Protocol = ClientProtocol.OpenAI,
                Relay = new RelayPayload(path, body.Bytes, parsed.Stream),
                EmbeddingInputs = parsed.EmbeddingInputs,
            };
            var reply = await desk.Reception.AdmitAsync(arrival);
            // This connection's hold on the request: released when the handler ends, however it ends.
            using var hold = reply.Hold;
            if (reply.Rates is { } rates)
            {
                RateLimitHeaders.Write(context.Response.Headers, rates);
            }

            if (reply.Request is not { } request)
            {
                await Refused(reply.Denial!, parsed.Generation.Model).ExecuteAsync(context);
                return;
            }

            var responder = new OpenAIResponder(context, request, desk, shape, parsed);
            await responder.RespondAsync();
        }
    }

    private static OpenAIRequest ReadChat(FieldReader fields)
    {
        string? model = fields.String("model", required: true);
        var messages = fields.Has("messages") ? ReadMessages(fields) ?? [] : [];
        if (!fields.Has("messages"))
        {
            fields.Fail("messages", "'messages' is required: an array of {\"role\", \"content\"} objects.");
        }

        var (stream, includeUsage) = StreamFlags(fields);
        int? maxTokens = fields.Int("max_completion_tokens", 1, int.MaxValue) ?? fields.Int("max_tokens", 1, int.MaxValue);
        OnlyOneGeneration(fields, "n");
        // Not in OpenAI's chat API, but servers that share one sampling-parameter type across both (older vLLM) read it.
        OnlyOneGeneration(fields, "best_of");

        return new OpenAIRequest(Generation(fields, model, messages, GenerationKind.Chat, null, maxTokens), stream, includeUsage, null, false);
    }

    private static OpenAIRequest ReadCompletion(FieldReader fields)
    {
        string? model = fields.String("model", required: true);
        var prompts = fields.Strings("prompt", required: true);
        if (prompts is { Count: > 1 })
        {
            fields.Fail("prompt", "'prompt' must be a single string: Anteroom runs one generation per request.");
        }

        var (stream, includeUsage) = StreamFlags(fields);
        int? maxTokens = fields.Int("max_tokens", 1, int.MaxValue);
        OnlyOneGeneration(fields, "n");
        OnlyOneGeneration(fields, "best_of");
        var prompt = prompts is { Count: 1 } ? prompts[0] : "";
        return new OpenAIRequest(Generation(fields, model, [], GenerationKind.Completion, prompt, maxTokens), stream, includeUsage, null, false);
    }

    /// <summary>
    /// A request holds one slot and is reserved and charged for one answer: asking the backend for several at
    /// once (<c>n</c>, <c>best_of</c>) would run them all on that one slot, outside every limit.
    /// </summary>
    private static void OnlyOneGeneration(FieldReader fields, string name)
    {
        if (fields.Int(name, 1, 1) is null && fields.Has(name))
        {
            fields.Fail(name, $"'{name}' must be 1: Anteroom runs one generation per request.");
        }
    }

    private static OpenAIRequest ReadEmbedding(FieldReader fields)
    {
        string? model = fields.String("model", required: true);
        var inputs = fields.Strings("input", required: true);
        string? format = fields.String("encoding_format");
        if (format is not (null or "float" or "base64"))
        {
            fields.Fail("encoding_format", "'encoding_format' must be 'float' or 'base64'.");
        }

        var generation = new GenerationRequest { Model = model ?? "", Messages = [] };
        return new OpenAIRequest(generation, false, false, inputs ?? [], format == "base64");
    }

    private static List<ChatMessage>? ReadMessages(FieldReader fields)
    {
        var element = fields.Element("messages");
        if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() == 0)
        {
            fields.Fail("messages", "'messages' must be a non-empty array of {\"role\", \"content\"} objects.");
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

            if (!TryReadContent(item, out string content))
            {
                fields.Fail($"{field}.content", $"'{field}.content' must be a string, null, or an array of content parts.");
                return null;
            }

            messages.Add(new ChatMessage(role.GetString()!, content));
        }

        return messages;
    }

    private static bool TryReadContent(JsonElement message, out string content)
    {
        content = "";
        if (!message.TryGetProperty("content", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            content = value.GetString()!;
            return true;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        // Text parts are what a model reads; other parts (images) travel only when bytes are relayed.
        content = string.Concat(value.EnumerateArray()
            .Where(part => part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
            .Select(part => part.GetProperty("text").GetString()));
        return true;
    }

    private static (bool Stream, bool IncludeUsage) StreamFlags(FieldReader fields)
    {
        bool stream = fields.Bool("stream") ?? false;
        var options = fields.Object("stream_options");
        bool includeUsage = options?.Bool("include_usage") ?? false;
        fields.Adopt("stream_options", options);
        return (stream, includeUsage);
    }

    private static GenerationRequest Generation(
        FieldReader fields, string? model, List<ChatMessage> messages, GenerationKind kind, string? prompt, int? maxTokens) => new()
        {
            Model = model ?? "",
            Messages = messages,
            Kind = kind,
            Prompt = prompt,
            MaxOutputTokens = maxTokens,
            Temperature = fields.Number("temperature", 0, 2),
            TopP = fields.Number("top_p", 0, 1),
            Seed = fields.Int("seed", int.MinValue, int.MaxValue),
            Stop = fields.Strings("stop"),
        };

    internal static IResult Refused(Denial denial, string model)
    {
        string message = denial.Code == "model_not_found" ? $"The model '{model}' does not exist." : denial.Message;
        var result = Error(denial.Status, message, ApiSurfaces.OpenAIErrorType(denial.Status), denial.Field, denial.Code);
        return RetryAfterResult.Wrap(result, denial.RetryAfter);
    }

    internal static IResult Error(int status, string message, string type, string? param, string? code) =>
        Results.Json(new OpenAIError(new OpenAIErrorDetail(message, type, param, code)), OpenAIJson.Default.OpenAIError, statusCode: status);
}

internal enum OpenAIShape
{
    Chat,
    Completion,
    Embedding,
}

/// <summary>What an OpenAI request asked for beyond the generation itself.</summary>
internal sealed record OpenAIRequest(
    GenerationRequest Generation, bool Stream, bool IncludeUsage, IReadOnlyList<string>? EmbeddingInputs, bool Base64Embeddings);
