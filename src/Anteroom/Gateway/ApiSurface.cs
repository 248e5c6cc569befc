using Anteroom.DropIn;
using Anteroom.Native;

namespace Anteroom.Gateway;

/// <summary>
/// Which API a path belongs to, so an error written before any endpoint runs still comes in that API's shape. It
/// decides only the shape of an error; who may call what is decided by endpoint metadata (<see cref="Identity.Access"/>).
/// </summary>
internal enum ApiSurface
{
    /// <summary>The pages and their files: no identity needed.</summary>
    Page,

    /// <summary>Anteroom's own API.</summary>
    Native,

    /// <summary>The OpenAI-compatible API under <c>/v1</c>.</summary>
    OpenAI,

    /// <summary>The Ollama-compatible API under <c>/api</c>.</summary>
    Ollama,
}

internal static class ApiSurfaces
{
    private static readonly string[] NativePrefixes = ["/chat", "/queue", "/models", "/conversations", "/admin/", "/session"];

    public static ApiSurface Of(HttpRequest request)
    {
        var path = request.Path;
        if (path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase))
        {
            return ApiSurface.OpenAI;
        }

        if (path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase))
        {
            return ApiSurface.Ollama;
        }

        string value = path.Value ?? "/";
        foreach (var prefix in NativePrefixes)
        {
            if (prefix.EndsWith('/') ? value.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) : path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return ApiSurface.Native;
            }
        }

        return ApiSurface.Page;
    }

    /// <summary>An error in the surface's own shape: native <c>{error:{code,message}}</c>, OpenAI's, or Ollama's <c>{error}</c>.</summary>
    public static IResult Error(ApiSurface surface, int status, string code, string message, string? field = null) => surface switch
    {
        ApiSurface.OpenAI => OpenAIEndpoints.Error(status, message, OpenAIErrorType(status), field, code),
        ApiSurface.Ollama => OllamaEndpoints.Error(status, message),
        _ => NativeEndpoints.Error(status, code, message, field),
    };

    /// <summary>The <c>type</c> the OpenAI API gives an error of this status; the SDKs pick their exception by status.</summary>
    public static string OpenAIErrorType(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "authentication_error",
        StatusCodes.Status403Forbidden => "permission_error",
        StatusCodes.Status404NotFound => "not_found_error",
        StatusCodes.Status429TooManyRequests => "rate_limit_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };
}
