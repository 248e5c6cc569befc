using System.Net;
using System.Net.Http.Headers;

namespace Anteroom.GatewayBench;

/// <summary>
/// The least a .NET gateway can do: Kestrel receives a POST, a pooled <see cref="HttpMessageInvoker"/> sends its
/// body to one upstream, and the answer is copied back, each read flushed at once so streams flow token by token.
/// No logging, no routing beyond one path, no queue. The benchmark runs it beside nginx and Anteroom to show what
/// Kestrel and the HTTP client cost on their own on the machine at hand: the part of Anteroom's cost per request
/// that no change inside Anteroom can remove.
/// </summary>
internal static class BareProxy
{
    public static async Task<int> RunAsync(Arguments arguments)
    {
        int port = arguments.Number("port", 0);
        var upstream = new Uri(new Uri(arguments.Text("upstream")), "/v1/chat/completions");
        using var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        });

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        app.MapPost("/v1/chat/completions", (HttpContext context) => ForwardAsync(context, client, upstream));
        await app.RunAsync();
        return 0;
    }

    private static async Task ForwardAsync(HttpContext context, HttpMessageInvoker client, Uri upstream)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, upstream)
        {
            Content = new StreamContent(context.Request.Body),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(context.Request.ContentType ?? "application/json");
        if (context.Request.ContentLength is { } length)
        {
            request.Content.Headers.ContentLength = length;
        }

        using var answer = await client.SendAsync(request, context.RequestAborted);
        var response = context.Response;
        response.StatusCode = (int)answer.StatusCode;
        response.ContentType = answer.Content.Headers.ContentType?.ToString();
        if (answer.Content.Headers.ContentLength is { } answerLength)
        {
            response.ContentLength = answerLength;
        }

        await using var body = await answer.Content.ReadAsStreamAsync(context.RequestAborted);
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            await response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
            await response.Body.FlushAsync(context.RequestAborted);
        }
    }
}
