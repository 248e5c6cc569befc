using System.Net;
using System.Net.Http.Json;
using System.Text;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Access;

/// <summary>Body limits, other sites' pages, and secrets that exist only where the operator keeps them.</summary>
public sealed class SecurityTests
{
    [Fact]
    public async Task OversizedBody_Gets413InEachApisShape_AndNothingIsQueued()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:MaxRequestBodyBytes"] = "2048" }, keysMode: false);
        var client = gateway.Client("alice");
        string big = new('x', 4096);

        using var native = await client.PostAsJsonAsync("chat", new { message = big }, ct);
        using var openAI = await client.PostAsJsonAsync("v1/chat/completions", ChatBody(OnOllamaBackend, big), ct);
        using var ollama = await client.PostAsJsonAsync("api/chat", ChatBody(OnOllamaBackend, big), ct);
        using var conversation = await client.PostAsJsonAsync("conversations", new { title = big }, ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, native.StatusCode);
        Assert.Equal("body_too_large", await ErrorCodeAsync(native, ct));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, openAI.StatusCode);
        Assert.Equal("invalid_request_error", (await ErrorAsync(openAI, ct)).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, ollama.StatusCode);
        Assert.Contains("larger", (await ErrorAsync(ollama, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, conversation.StatusCode);
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Theory]
    [InlineData("chat", "{\"message\": 42}", "message")]
    [InlineData("chat", "{\"message\": \"hi\", \"conversation_id\": 7}", "conversation_id")]
    [InlineData("chat", "{\"message\": \"hi\", \"max_tokens\": \"many\"}", "max_tokens")]
    [InlineData("v1/chat/completions", "{\"model\": \"llama3.1:8b\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"user\": 5}", "user")]
    [InlineData("v1/chat/completions", "{\"model\": \"llama3.1:8b\", \"messages\": \"hi\"}", "messages")]
    [InlineData("conversations", "[1, 2]", null)]
    public async Task MistypedField_Gets400NamingIt_NeverA500(string path, string body, string? field)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);

        using var response = await gateway.Client("alice").PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorAsync(response, ct);
        if (field is not null)
        {
            string named = error.TryGetProperty("field", out var f) ? f.GetString()! : error.GetProperty("param").GetString()!;
            Assert.Equal(field, named);
        }
    }

    [Fact]
    public async Task AnotherSitesPage_IsRefused_UnlessItsOriginIsAllowed()
    {
        var ct = Within30Seconds();
        await using var closed = await StartWithAccessAsync(keysMode: false);
        await using var open = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:Cors:Origins:0"] = "https://app.example.com" }, keysMode: false);

        using var foreign = await SendFromAsync(closed, "https://evil.example", ct);
        using var sameOrigin = await SendFromAsync(closed, closed.Address.GetLeftPart(UriPartial.Authority), ct);
        // Behind a TLS-terminating proxy the page is https while Anteroom itself is reached over http.
        using var behindProxy = await SendFromAsync(closed, "https://" + closed.Address.Authority, ct);
        using var preflightClosed = await PreflightAsync(closed, "https://app.example.com", ct);
        using var allowed = await SendFromAsync(open, "https://app.example.com", ct);
        using var preflightOpen = await PreflightAsync(open, "https://app.example.com", ct);
        using var stillForeign = await SendFromAsync(open, "https://evil.example", ct);

        Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        Assert.Equal("origin_not_allowed", await ErrorCodeAsync(foreign, ct));
        Assert.Equal(HttpStatusCode.OK, sameOrigin.StatusCode);
        Assert.Equal(HttpStatusCode.OK, behindProxy.StatusCode);
        Assert.False(preflightClosed.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal("https://app.example.com", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("https://app.example.com", preflightOpen.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal(HttpStatusCode.Forbidden, stillForeign.StatusCode);
    }

    [Fact]
    public async Task CookieProtectionKeys_AreGeneratedInTheDataDirectory_OnFirstUse()
    {
        var ct = Within30Seconds();
        string parent = TestGateway.NewDataDirectory();
        string data = Path.Combine(parent, "state");
        try
        {
            await using (var gateway = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:Data:Directory"] = data }))
            {
                string key = await gateway.CreateKeyAsync("alice");
                using var signIn = await gateway.Client().PostAsJsonAsync("session", new { key }, ct);
                Assert.Equal(HttpStatusCode.OK, signIn.StatusCode);
            }

            Assert.True(File.Exists(Path.Combine(data, "anteroom.db")));
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(data, "protection-keys"), "*.xml"));
            if (!OperatingSystem.IsWindows())
            {
                // It holds keys: only its owner may look inside.
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(parent, recursive: true);
        }
    }

    private static async Task<HttpResponseMessage> SendFromAsync(TestGateway gateway, string origin, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "chat") { Content = JsonContent.Create(new { message = "hi" }) };
        request.Headers.Add("Origin", origin);
        return await gateway.Client("alice").SendAsync(request, cancellationToken);
    }

    private static async Task<HttpResponseMessage> PreflightAsync(TestGateway gateway, string origin, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Options, "chat");
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "content-type");
        return await gateway.Client().SendAsync(request, cancellationToken);
    }
}
