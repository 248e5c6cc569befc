using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Http;

/// <summary>A whole JSON response with its Content-Length, as model servers send small answers.</summary>
internal static class JsonResponse
{
    public const string ContentType = "application/json; charset=utf-8";

    public static Task WriteAsync<T>(HttpContext http, int status, T value, JsonTypeInfo<T> type)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, type);
        http.Response.StatusCode = status;
        http.Response.ContentType = ContentType;
        http.Response.ContentLength = bytes.Length;
        // No cancellation token: Kestrel drops writes to a closed connection, and a client that left is no error here.
        return http.Response.Body.WriteAsync(bytes).AsTask();
    }
}
