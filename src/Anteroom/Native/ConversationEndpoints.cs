using System.Security.Cryptography;
using System.Text.Json;
using Anteroom.DropIn;
using Anteroom.Identity;
using Anteroom.Storage;

namespace Anteroom.Native;

/// <summary>
/// A user's stored conversations. Each belongs to the identity that created it; for anyone else it does not
/// exist (404), whatever they know of its id.
/// </summary>
internal static class ConversationEndpoints
{
    public const string DefaultTitle = "New conversation";
    private const int MaxTitleLength = 200;

    public static void MapConversations(this IEndpointRouteBuilder app)
    {
        app.MapPost("/conversations", CreateAsync);
        app.MapGet("/conversations", ListAsync);
        app.MapGet("/conversations/{id}", GetAsync);
        app.MapPatch("/conversations/{id}", RenameAsync);
        app.MapDelete("/conversations/{id}", DeleteAsync);
    }

    public static IResult NotFound(string id) =>
        NativeEndpoints.Error(StatusCodes.Status404NotFound, "conversation_not_found", $"No conversation '{id}' of yours is known here.", "conversation_id");

    /// <summary>A title from a conversation's first message: its first line, shortened.</summary>
    public static string TitleFrom(string message)
    {
        string line = message.Trim().Split('\n', 2)[0].Trim();
        return line.Length == 0 ? DefaultTitle : line.Length <= 60 ? line : line[..59].TrimEnd() + "…";
    }

    private static async Task<IResult> CreateAsync(HttpContext context, IConversationStore store, TimeProvider time)
    {
        string? title = DefaultTitle;
        if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            var (read, problem) = await ReadTitleAsync(context, required: false);
            if (problem is not null)
            {
                return problem;
            }

            title = read ?? DefaultTitle;
        }

        string id = "conv_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var conversation = await store.CreateConversationAsync(context.Caller().Owner, id, title, time.GetUtcNow(), context.RequestAborted);
        return Results.Json(Body(conversation), NativeJson.Default.ConversationBody, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> ListAsync(HttpContext context, IConversationStore store)
    {
        var conversations = await store.ListConversationsAsync(context.Caller().Owner, context.RequestAborted);
        return Results.Json(new ConversationList([.. conversations.Select(Body)]), NativeJson.Default.ConversationList);
    }

    private static async Task<IResult> GetAsync(HttpContext context, string id, IConversationStore store)
    {
        string owner = context.Caller().Owner;
        var conversation = await store.FindConversationAsync(owner, id, context.RequestAborted);
        var messages = conversation is null ? null : await store.ReadMessagesAsync(owner, id, cancellationToken: context.RequestAborted);
        if (conversation is null || messages is null)
        {
            return NotFound(id);
        }

        return Results.Json(
            new ConversationDetail(
                conversation.Id, conversation.Title, conversation.CreatedAt, conversation.UpdatedAt,
                [.. messages.Select(m => new MessageBody(m.Seq, m.Role, m.Content, m.At, m.RequestId, m.Model, m.FinishReason))]),
            NativeJson.Default.ConversationDetail);
    }

    private static async Task<IResult> RenameAsync(HttpContext context, string id, IConversationStore store, TimeProvider time)
    {
        var (title, problem) = await ReadTitleAsync(context, required: true);
        if (problem is not null)
        {
            return problem;
        }

        var renamed = await store.RenameConversationAsync(context.Caller().Owner, id, title!, time.GetUtcNow(), context.RequestAborted);
        return renamed is null ? NotFound(id) : Results.Json(Body(renamed), NativeJson.Default.ConversationBody);
    }

    private static async Task<IResult> DeleteAsync(HttpContext context, string id, IConversationStore store) =>
        await store.DeleteConversationAsync(context.Caller().Owner, id, context.RequestAborted) ? Results.NoContent() : NotFound(id);

    private static async Task<(string? Title, IResult? Problem)> ReadTitleAsync(HttpContext context, bool required)
    {
        var (body, problem) = await JsonBody.ReadAsync(context.Request, context.RequestAborted);
        if (body is null)
        {
            return (null, NativeEndpoints.Problem(problem!));
        }

        using (body)
        {
            if (!body.Root.TryGetProperty("title", out var title) || title.ValueKind == JsonValueKind.Null)
            {
                return required
                    ? (null, NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request", "'title' is required.", "title"))
                    : (null, null);
            }

            string? text = title.ValueKind == JsonValueKind.String ? title.GetString()!.Trim() : null;
            if (text is null || text.Length is 0 or > MaxTitleLength || text.Any(char.IsControl))
            {
                return (null, NativeEndpoints.Error(StatusCodes.Status400BadRequest, "invalid_request",
                    $"'title' must be a string of 1 to {MaxTitleLength} printable characters.", "title"));
            }

            return (text, null);
        }
    }

    private static ConversationBody Body(Conversation c) => new(c.Id, c.Title, c.CreatedAt, c.UpdatedAt, c.MessageCount);
}
