using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Anteroom.Backends.Http;

internal static class JsonBody
{
    // Serialized up front rather than streamed (JsonContent) so the request carries a Content-Length:
    // the small HTTP servers embedded in some model servers handle chunked request bodies poorly.
    public static HttpContent Create<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }
}
