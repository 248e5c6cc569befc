using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Identity;
using Anteroom.Storage;
using Anteroom.Tests.DropIn;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Access;

/// <summary>Who may call: keys in keys mode, placeholders tolerated in open mode, revoked and expired keys refused at once.</summary>
public sealed class AuthenticationTests
{
    [Fact]
    public async Task KeysMode_WithoutAKey_Gets401InEachApisOwnShape()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();

        var (native, openAI, ollama) = await EachApiAsync(gateway.Client("someone"), OnOllamaBackend, ct);

        Assert.Equal(HttpStatusCode.Unauthorized, native.StatusCode);
        Assert.Equal("missing_api_key", await ErrorCodeAsync(native, ct));
        Assert.Equal(HttpStatusCode.Unauthorized, openAI.StatusCode);
        var openAIError = await ErrorAsync(openAI, ct);
        Assert.Equal(("missing_api_key", "authentication_error"), (openAIError.GetProperty("code").GetString(), openAIError.GetProperty("type").GetString()));
        Assert.Equal(HttpStatusCode.Unauthorized, ollama.StatusCode);
        Assert.Contains("API key", (await ErrorAsync(ollama, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal("Bearer", native.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task KeysMode_AValidKey_WorksAsBearerAsXApiKeyAndFromTheOfficialSdk()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        string key = await gateway.CreateKeyAsync("alice");
        using var viaHeader = gateway.Client();
        viaHeader.DefaultRequestHeaders.Add("X-Api-Key", key);

        using var bearer = await gateway.KeyClient(key).PostAsJsonAsync("chat", new { message = "hi" }, ct);
        using var header = await viaHeader.PostAsJsonAsync("chat", new { message = "hi" }, ct);
        var sdk = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(gateway.Address, "v1") });
        var completion = await sdk.GetChatClient(OnOpenAIBackend).CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: ct);
        var wrong = new OpenAIClient(new ApiKeyCredential("sk-not-a-key"), new OpenAIClientOptions { Endpoint = new Uri(gateway.Address, "v1") });
        var refused = await Assert.ThrowsAsync<ClientResultException>(() =>
            wrong.GetChatClient(OnOpenAIBackend).CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: ct));

        Assert.Equal(HttpStatusCode.OK, bearer.StatusCode);
        Assert.Equal(HttpStatusCode.OK, header.StatusCode);
        Assert.NotEmpty(completion.Value.Content[0].Text);
        Assert.Equal(401, refused.Status);
    }

    [Fact]
    public async Task RevokedKey_IsRefusedOnItsVeryNextRequest()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        string key = await gateway.CreateKeyAsync("alice");
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var alice = gateway.KeyClient(key);
        using var before = await alice.GetAsync("v1/models", ct);
        ApiKeySecrets.TryParse(key, out string id, out _);

        using var revoke = await admin.DeleteAsync($"admin/keys/{id}", ct);
        using var after = await alice.GetAsync("v1/models", ct);
        using var again = await admin.DeleteAsync($"admin/keys/{id}", ct);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal("revoked_api_key", await ErrorCodeAsync(after, ct));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task ExpiredKey_IsRefused_AndAFutureExpiryIsNot()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        var now = DateTimeOffset.UtcNow;
        var (expiredToken, expired) = ApiKeySecrets.Create("old", "default", now.AddDays(-2), now.AddMinutes(-1), admin: false, canActForUsers: false);
        await gateway.Services.GetRequiredService<IKeyStore>().AddKeyAsync(expired, ct);
        string fresh = await gateway.CreateKeyAsync("new", expiresIn: TimeSpan.FromDays(30));

        using var refused = await gateway.KeyClient(expiredToken).GetAsync("v1/models", ct);
        using var accepted = await gateway.KeyClient(fresh).GetAsync("v1/models", ct);

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("expired_api_key", await ErrorCodeAsync(refused, ct));
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task OpenMode_IgnoresSdkPlaceholders_ButRefusesABadAnteroomKey()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        string key = await gateway.CreateKeyAsync("alice");

        using var placeholder = await gateway.KeyClient("sk-no-key-required").GetAsync("v1/models", ct);
        using var forged = await gateway.KeyClient(key[..^4] + "AAAA").GetAsync("v1/models", ct);
        using var anonymous = await gateway.Client().GetAsync("v1/models", ct);
        using var withKey = await gateway.KeyClient(key).PostAsJsonAsync("chat", new { message = "hi" }, ct);
        string id = withKey.Headers.GetValues("X-Request-Id").Single();
        using var seenByKey = await gateway.KeyClient(key).GetAsync($"queue/requests/{id}", ct);
        using var seenByAddress = await gateway.Client().GetAsync($"queue/requests/{id}", ct);

        Assert.Equal(HttpStatusCode.OK, placeholder.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        Assert.Equal("invalid_api_key", await ErrorCodeAsync(forged, ct));
        Assert.Equal(HttpStatusCode.OK, anonymous.StatusCode);
        // A key is still an identity in open mode: its requests are its own, not the address's.
        Assert.Equal(HttpStatusCode.OK, seenByKey.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, seenByAddress.StatusCode);
    }

    [Fact]
    public async Task AdminEndpoints_NeedAnAdminKey_AndCanIssueKeys()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var user = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));

        using var userTry = await user.GetAsync("admin/queue", ct);
        using var browserTry = await gateway.Client("browser").GetAsync("admin/usage", ct);
        using var queue = await admin.GetAsync("admin/queue", ct);
        using var backends = await admin.GetAsync("admin/backends", ct);
        using var created = await admin.PostAsJsonAsync("admin/keys", new { user = "bob", tier = "default", expires = "7d" }, ct);
        using var badTier = await admin.PostAsJsonAsync("admin/keys", new { user = "bob", tier = "platinum" }, ct);
        using var badExpiry = await admin.PostAsJsonAsync("admin/keys", new { user = "bob", expires = "soon" }, ct);
        using var createdBody = JsonDocument.Parse(await created.Content.ReadAsStringAsync(ct));
        string bobKey = createdBody.RootElement.GetProperty("key").GetString()!;
        using var bob = await gateway.KeyClient(bobKey).GetAsync("v1/models", ct);
        using var keys = JsonDocument.Parse(await admin.GetStringAsync("admin/keys", ct));

        Assert.Equal(HttpStatusCode.Forbidden, userTry.StatusCode);
        Assert.Equal("admin_only", await ErrorCodeAsync(userTry, ct));
        Assert.Equal(HttpStatusCode.Forbidden, browserTry.StatusCode);
        Assert.Equal(HttpStatusCode.OK, queue.StatusCode);
        Assert.Equal(2, JsonDocument.Parse(await backends.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("backends").GetArrayLength());
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badTier.StatusCode);
        Assert.Contains("platinum", (await ErrorAsync(badTier, ct)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("expires", (await ErrorAsync(badExpiry, ct)).GetProperty("field").GetString());
        var listed = keys.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("user").GetString()).ToList();
        Assert.Equal(["root", "alice", "bob"], listed);
        // The list never carries a secret: only ids, users and flags.
        Assert.DoesNotContain(bobKey[(ApiKeySecrets.Prefix.Length + 17)..], keys.RootElement.GetRawText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET", "Admin/keys")]
    [InlineData("GET", "ADMIN/queue")]
    [InlineData("POST", "Admin/Keys")]
    [InlineData("GET", "V1/models")]
    [InlineData("GET", "Queue/Requests")]
    [InlineData("POST", "CHAT")]
    public async Task AnyCasingOfAPath_PassesTheSameGate(string method, string path)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        var user = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));
        HttpRequestMessage Request() => new(new HttpMethod(method), path)
        {
            Content = method == "POST" ? JsonContent.Create(new { user = "mallory", admin = true, message = "hi" }) : null,
        };

        using var anonymous = await gateway.Client().SendAsync(Request(), ct);
        using var ordinary = await user.SendAsync(Request(), ct);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        if (path.StartsWith("admin", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Equal(HttpStatusCode.Forbidden, ordinary.StatusCode);
        }
        else
        {
            Assert.True(ordinary.IsSuccessStatusCode, $"{ordinary.StatusCode}");
        }
    }

    [Fact]
    public async Task Browser_PastesAKeyOnce_ThenItLivesInAProtectedStrictCookie()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        string key = await gateway.CreateKeyAsync("alice");
        var browser = gateway.Client();

        using var before = await browser.GetAsync("session", ct);
        using var wrong = await browser.PostAsJsonAsync("session", new { key = "ant_0000000000000000_" + new string('A', 43) }, ct);
        using var signIn = await browser.PostAsJsonAsync("session", new { key }, ct);
        string cookie = signIn.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(Authenticator.KeyCookie + "=", StringComparison.Ordinal));
        string cookiePair = cookie.Split(';')[0];
        using var withCookie = new HttpRequestMessage(HttpMethod.Post, "chat") { Content = JsonContent.Create(new { message = "hi" }) };
        withCookie.Headers.Add("Cookie", cookiePair);
        using var chat = await browser.SendAsync(withCookie, ct);
        using var tampered = new HttpRequestMessage(HttpMethod.Get, "models");
        tampered.Headers.Add("Cookie", cookiePair[..^6] + "AAAAAA");
        using var tamperedAnswer = await browser.SendAsync(tampered, ct);
        using var signOut = await browser.DeleteAsync("session", ct);

        using var state = JsonDocument.Parse(await before.Content.ReadAsStringAsync(ct));
        Assert.Equal("keys", state.RootElement.GetProperty("mode").GetString());
        Assert.False(state.RootElement.GetProperty("signed_in").GetBoolean());
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.OK, signIn.StatusCode);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(key, Uri.UnescapeDataString(cookie), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, tamperedAnswer.StatusCode);
        Assert.Contains(signOut.Headers.GetValues("Set-Cookie"), c => c.StartsWith(Authenticator.KeyCookie + "=;", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TrustedAppKey_LimitsEachEndUserApart_AnUntrustedKeysUserFieldChangesNothing()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:Queue:MaxInFlightPerUser"] = "1" });
        var app = gateway.KeyClient(await gateway.CreateKeyAsync("chatbot", canActForUsers: true));
        var plain = gateway.KeyClient(await gateway.CreateKeyAsync("script"));
        gateway.Simulator(OllamaBackend).Hold();
        object Ask(string user) => new { model = OnOllamaBackend, user, stream = true, messages = new[] { new { role = "user", content = "hi" } } };

        using var bob = await DropInHttp.OpenStreamAsync(app, "v1/chat/completions", Ask("bob"), ct);
        using var bobAgain = await app.PostAsJsonAsync("v1/chat/completions", Ask("bob"), ct);
        using var carol = await DropInHttp.OpenStreamAsync(app, "v1/chat/completions", Ask("carol"), ct);
        using var viaHeader = new HttpRequestMessage(HttpMethod.Post, "api/chat") { Content = JsonContent.Create(new { model = OnOllamaBackend, messages = new[] { new { role = "user", content = "hi" } } }) };
        viaHeader.Headers.Add(Authenticator.EndUserHeader, "dave");
        using var dave = await app.SendAsync(viaHeader, HttpCompletionOption.ResponseHeadersRead, ct);
        using var script = await DropInHttp.OpenStreamAsync(plain, "v1/chat/completions", Ask("erin"), ct);
        using var scriptAgain = await plain.PostAsJsonAsync("v1/chat/completions", Ask("frank"), ct);
        using var scriptHeader = new HttpRequestMessage(HttpMethod.Post, "chat") { Content = JsonContent.Create(new { message = "hi" }) };
        scriptHeader.Headers.Add(Authenticator.EndUserHeader, "gina");
        using var scriptViaHeader = await plain.SendAsync(scriptHeader, ct);

        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, bobAgain.StatusCode);
        Assert.Equal("user_in_flight_limit", await ErrorCodeAsync(bobAgain, ct));
        Assert.Equal(HttpStatusCode.OK, carol.StatusCode);
        Assert.Equal(HttpStatusCode.OK, dave.StatusCode);
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, scriptAgain.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, scriptViaHeader.StatusCode);
        var owners = (await gateway.Queue.GetRunningAsync()).Select(r => r.Owner).Concat((await gateway.Queue.GetWaitingAsync()).Select(w => w.Owner)).Order().ToList();
        Assert.Equal(["app:chatbot/bob", "app:chatbot/carol", "app:chatbot/dave", "user:script"], owners);
        gateway.Simulator(OllamaBackend).Release();
    }

    [Fact]
    public async Task EndUserNamedAlice_IsNotTheKeyUserAlice()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync();
        var alice = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));
        var app = gateway.KeyClient(await gateway.CreateKeyAsync("chatbot", canActForUsers: true));
        using var mine = await alice.PostAsJsonAsync("chat", new { message = "hi" }, ct);
        string id = mine.Headers.GetValues("X-Request-Id").Single();

        using var impersonation = new HttpRequestMessage(HttpMethod.Get, $"queue/requests/{id}");
        impersonation.Headers.Add(Authenticator.EndUserHeader, "alice");
        using var seen = await app.SendAsync(impersonation, ct);
        using var badName = new HttpRequestMessage(HttpMethod.Get, "queue/requests");
        badName.Headers.Add(Authenticator.EndUserHeader, new string('x', Caller.MaxEndUserLength + 1));
        using var refused = await app.SendAsync(badName, ct);

        Assert.Equal(HttpStatusCode.NotFound, seen.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("invalid_end_user", await ErrorCodeAsync(refused, ct));
    }
}
