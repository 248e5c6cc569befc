using System.Globalization;

namespace Anteroom.Gateway;

/// <summary>
/// Gives the errors the web server raises by itself the shape of the API that was called: an unknown route (404),
/// a method the route does not take (405), a body that is malformed at the HTTP level (a bad chunk: 400), too slow
/// (408) or too large (413). Without it they come back with empty bodies, which SDKs report as a bare status with no
/// reason. An unexpected exception is logged and answered 500 in the same shape, never an empty body; one that says
/// Redis is out of reach (in Redis mode) is answered 503 with <c>Retry-After</c>, as a load balancer expects.
/// </summary>
internal sealed partial class ErrorShapes(RequestDelegate next, ILogger<ErrorShapes> log)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (BadHttpRequestException exception) when (!context.Response.HasStarted)
        {
            // Raised while the body is read: the client sent it badly, slowly or too much of it.
            await WriteAsync(context, exception.StatusCode, CodeOf(exception.StatusCode), exception.Message);
            return;
        }
        catch (Exception exception) when (Shared.SharedState.ExplainsFailure(exception) && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            // Redis mode with Redis out of reach: nothing was admitted, and the connection is already retrying.
            LogSharedStateUnavailable(context.Request.Method, context.Request.Path.Value ?? "/", exception.Message);
            await WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "shared_state_unavailable",
                "Anteroom cannot reach the Redis its replicas share, so it cannot queue this request now; try again shortly.",
                Shared.SharedState.RetryAfter);
            return;
        }
        catch (Exception exception) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            LogUnhandled(exception, context.Request.Method, context.Request.Path.Value ?? "/");
            await WriteAsync(context, StatusCodes.Status500InternalServerError, "internal_error",
                "Anteroom failed to handle this request; the operator can find the cause in its log.");
            return;
        }

        if (IsBodyless(context))
        {
            var request = context.Request;
            string message = context.Response.StatusCode switch
            {
                StatusCodes.Status404NotFound => $"There is no endpoint at {request.Path.Value}.",
                StatusCodes.Status405MethodNotAllowed =>
                    $"{request.Method} is not allowed on {request.Path.Value}; it takes {context.Response.Headers.Allow}.",
                var status => $"The request failed with status {status.ToString(CultureInfo.InvariantCulture)}.",
            };
            await WriteAsync(context, context.Response.StatusCode, CodeOf(context.Response.StatusCode), message);
        }
    }

    /// <summary>An error status with nothing written: what routing and the server leave behind, never an endpoint's answer.</summary>
    private static bool IsBodyless(HttpContext context)
    {
        var response = context.Response;
        return response.StatusCode >= 400 && !response.HasStarted && response.ContentLength is null &&
            string.IsNullOrEmpty(response.ContentType) && !HttpMethods.IsHead(context.Request.Method) &&
            !context.RequestAborted.IsCancellationRequested;
    }

    private static Task WriteAsync(HttpContext context, int status, string code, string message, TimeSpan? retryAfter = null)
    {
        // Whatever a failed endpoint had set is not part of this answer; Allow stays, it tells the methods to use.
        var allow = context.Response.Headers.Allow;
        context.Response.Clear();
        if (status == StatusCodes.Status405MethodNotAllowed)
        {
            context.Response.Headers.Allow = allow;
        }

        if (retryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = ((long)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        return ApiSurfaces.Error(ApiSurfaces.Of(context.Request), status, code, message).ExecuteAsync(context);
    }

    private static string CodeOf(int status) => status switch
    {
        StatusCodes.Status400BadRequest => "bad_request",
        StatusCodes.Status404NotFound => "not_found",
        StatusCodes.Status405MethodNotAllowed => "method_not_allowed",
        StatusCodes.Status408RequestTimeout => "request_timeout",
        StatusCodes.Status411LengthRequired => "length_required",
        StatusCodes.Status413PayloadTooLarge => "body_too_large",
        StatusCodes.Status415UnsupportedMediaType => "unsupported_media_type",
        StatusCodes.Status431RequestHeaderFieldsTooLarge => "headers_too_large",
        >= 500 => "internal_error",
        _ => "bad_request",
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "Answered 503 to {Method} {Path}: Redis cannot be reached ({Reason})")]
    private partial void LogSharedStateUnavailable(string method, string path, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled exception on {Method} {Path}")]
    private partial void LogUnhandled(Exception exception, string method, string path);
}
