using Anteroom.Simulator.Http;
using Anteroom.Simulator.Ollama;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.OpenAI;

/// <summary>
/// OpenAI's error bodies, <c>{"error":{"message","type","param","code"}}</c>. The SDKs key on the status; the
/// types and codes are the ones OpenAI documents, so a caller can tell a bad field from an unknown model.
/// </summary>
internal static class OpenAIErrors
{
    public const string InvalidRequest = "invalid_request_error";
    public const string NotFound = "not_found_error";
    public const string ServerError = "api_error";

    public static OpenAIError Error(string message, string type, string? param = null, string? code = null) =>
        new(message, type, param, code);

    public static Task WriteAsync(HttpContext http, int status, OpenAIError error) =>
        JsonResponse.WriteAsync(http, status, new OpenAIErrorBody(error), SimulatorJson.Wire.OpenAIErrorBody);

    public static Task BadRequestAsync(HttpContext http, string message, string? param, string? code = null) =>
        WriteAsync(http, StatusCodes.Status400BadRequest, Error(message, InvalidRequest, param, code));

    public static Task MissingAsync(HttpContext http, string param) =>
        BadRequestAsync(http, $"Missing required parameter: '{param}'.", param, "missing_required_parameter");

    public static Task ModelNotFoundAsync(HttpContext http, string model) =>
        WriteAsync(http, StatusCodes.Status404NotFound, Error($"The model '{model}' does not exist.", NotFound, "model", "model_not_found"));

    // The same words as the Ollama refusal: a full queue is the same event whichever API the client speaks.
    public static Task BusyAsync(HttpContext http) =>
        WriteAsync(http, StatusCodes.Status503ServiceUnavailable, Error(OllamaErrors.Busy, ServerError, code: "server_busy"));

    public static Task ServerErrorAsync(HttpContext http, string message) =>
        WriteAsync(http, StatusCodes.Status500InternalServerError, Error(message, ServerError));
}
