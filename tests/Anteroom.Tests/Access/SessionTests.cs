using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Anteroom.Configuration;
using Anteroom.Identity;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Access;

/// <summary>
/// Browser sessions only Anteroom can issue, a bounded number of them per address, signing out that holds on the
/// server, the host names Anteroom answers to, and the warning about keys on plain http.
/// </summary>
public sealed class SessionTests
{
    [Fact]
    public async Task InventedSessionCookies_AreNoUsers_ManyParallelRequestsWithThemAreOneAddressWithOneUsersLimits()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(
            new Dictionary<string, string?> { ["Anteroom:Tiers:default:RequestsPerMinute"] = "3" }, keysMode: false);

        // The attack: each request with a new random cookie of the session's old shape, or of no shape at all.
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            string forged = i % 2 == 0 ? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) : Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
            using var request = new HttpRequestMessage(HttpMethod.Post, "chat") { Content = JsonContent.Create(new { message = "hi", max_tokens = 2 }) };
            request.Headers.Add("Cookie", $"{BrowserSessions.CookieName}={forged}");
            using var response = await gateway.Client().SendAsync(request, ct);
            return (response.StatusCode, Code: response.IsSuccessStatusCode ? null : await ErrorCodeAsync(response, ct));
        }));

        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.All(responses.Where(r => r.StatusCode != HttpStatusCode.OK), r =>
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.Equal("requests_per_minute_limit", r.Code);
        });
    }

    [Fact]
    public async Task BrowsersBeyondThePerAddressMaximum_AreRefusedASession_NeverMergedIntoAnother()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(
            new Dictionary<string, string?> { ["Anteroom:Auth:MaxSessionsPerAddress"] = "2" }, keysMode: false);

        var (first, firstName) = await NewSessionAsync(gateway, ct);
        var (second, _) = await NewSessionAsync(gateway, ct);
        using var third = await gateway.Client().GetAsync("session", ct);
        using var firstAgain = await SendWithCookieAsync(gateway, HttpMethod.Get, "session", first, ct);
        using var secondChats = await SendWithCookieAsync(gateway, HttpMethod.Get, "conversations", second, ct);
        // A cookie the gateway did not issue is no session, so it is not refused as one either: it is the address.
        using var forged = await SendWithCookieAsync(gateway, HttpMethod.Get, "conversations", $"{BrowserSessions.CookieName}={TestGateway.SessionOf("mallory")}", ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        var error = await ErrorAsync(third, ct);
        Assert.Equal("too_many_sessions", error.GetProperty("code").GetString());
        Assert.Contains("API key", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(third.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.False(third.Headers.Contains("Set-Cookie"));
        Assert.Equal(HttpStatusCode.OK, firstAgain.StatusCode);
        Assert.Equal(firstName, await UserAsync(firstAgain, ct));
        Assert.False(firstAgain.Headers.Contains("Set-Cookie"));
        Assert.Equal(HttpStatusCode.OK, secondChats.StatusCode);
        Assert.Equal(HttpStatusCode.OK, forged.StatusCode);
    }

    [Fact]
    public async Task AnIssuedSession_KeepsItsIdentityAndConversationsAcrossARestart_AndAfterItIsHeldAgainOnlyIfItsAddressHasRoom()
    {
        var ct = Within30Seconds();
        string directory = TestGateway.NewDataDirectory();
        var settings = new Dictionary<string, string?> { ["Anteroom:Data:Directory"] = directory, ["Anteroom:Auth:MaxSessionsPerAddress"] = "2" };
        try
        {
            string first, second, firstName;
            await using (var before = await StartWithAccessAsync(settings, keysMode: false))
            {
                (first, firstName) = await NewSessionAsync(before, ct);
                (second, _) = await NewSessionAsync(before, ct);
                using var create = await SendWithCookieAsync(before, HttpMethod.Post, "conversations", first, ct, new { title = "Kept" });
                Assert.Equal(HttpStatusCode.Created, create.StatusCode);
            }

            await using var after = await StartWithAccessAsync(settings, keysMode: false);
            using var firstSession = await SendWithCookieAsync(after, HttpMethod.Get, "session", first, ct);
            using var firstChats = await SendWithCookieAsync(after, HttpMethod.Get, "conversations", first, ct);
            var (_, newcomer) = await NewSessionAsync(after, ct);
            using var secondChats = await SendWithCookieAsync(after, HttpMethod.Get, "conversations", second, ct);

            Assert.Equal(firstName, await UserAsync(firstSession, ct));
            using var listed = JsonDocument.Parse(await firstChats.Content.ReadAsStringAsync(ct));
            Assert.Equal("Kept", listed.RootElement.GetProperty("conversations").EnumerateArray().Single().GetProperty("title").GetString());
            Assert.NotEqual(firstName, newcomer);
            Assert.Equal(HttpStatusCode.TooManyRequests, secondChats.StatusCode);
            Assert.Equal("too_many_sessions", await ErrorCodeAsync(secondChats, ct));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task SigningOut_EndsThatSignInOnTheServer_ACopyOfItsCookieGets401_HereAndOnAnotherServerOfTheSameData()
    {
        var ct = Within30Seconds();
        string directory = TestGateway.NewDataDirectory();
        var settings = new Dictionary<string, string?> { ["Anteroom:Data:Directory"] = directory };
        try
        {
            await using var gateway = await StartWithAccessAsync(settings);
            string key = await gateway.CreateKeyAsync("alice");
            string copied = await SignInAsync(gateway, key, ct);
            string other = await SignInAsync(gateway, key, ct);

            using var beforeSignOut = await SendWithCookieAsync(gateway, HttpMethod.Get, "models", copied, ct);
            using var signOut = await SendWithCookieAsync(gateway, HttpMethod.Delete, "session", copied, ct);
            using var afterSignOut = await SendWithCookieAsync(gateway, HttpMethod.Get, "models", copied, ct);
            using var otherSignIn = await SendWithCookieAsync(gateway, HttpMethod.Get, "models", other, ct);
            await using var replica = await StartWithAccessAsync(settings);
            using var onReplica = await SendWithCookieAsync(replica, HttpMethod.Get, "models", copied, ct);
            using var otherOnReplica = await SendWithCookieAsync(replica, HttpMethod.Get, "models", other, ct);

            Assert.Equal(HttpStatusCode.OK, beforeSignOut.StatusCode);
            Assert.Equal(HttpStatusCode.NoContent, signOut.StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, afterSignOut.StatusCode);
            Assert.Equal("signed_out", await ErrorCodeAsync(afterSignOut, ct));
            Assert.Equal(HttpStatusCode.OK, otherSignIn.StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, onReplica.StatusCode);
            Assert.Equal("signed_out", await ErrorCodeAsync(onReplica, ct));
            Assert.Equal(HttpStatusCode.OK, otherOnReplica.StatusCode);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ADnsRebindingPage_GetsHostNotAllowedInEachApisShape_WhileAddressesLocalhostAndListedNamesPass()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        await using var named = await StartWithAccessAsync(
            new Dictionary<string, string?> { ["Anteroom:AllowedHosts:0"] = "llm.example.com", ["Anteroom:AllowedHosts:1"] = "*.lab.example" }, keysMode: false);
        await using var any = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:AllowedHosts:0"] = "*" }, keysMode: false);

        using var native = await FromPageAtAsync(gateway, "evil.example", HttpMethod.Post, "chat", ct, new { message = "hi" });
        using var openAI = await FromPageAtAsync(gateway, "evil.example", HttpMethod.Post, "v1/chat/completions", ct, ChatBody(OnOllamaBackend));
        using var ollama = await FromPageAtAsync(gateway, "evil.example", HttpMethod.Post, "api/chat", ct, ChatBody(OnOllamaBackend));
        using var page = await FromPageAtAsync(gateway, "evil.example", HttpMethod.Get, "", ct);
        using var byAddress = await FromPageAtAsync(gateway, "127.0.0.1", HttpMethod.Get, "models", ct);
        using var byLocalhost = await FromPageAtAsync(gateway, "localhost", HttpMethod.Get, "models", ct);
        using var listed = await FromPageAtAsync(named, "LLM.example.com", HttpMethod.Get, "models", ct);
        using var subdomain = await FromPageAtAsync(named, "gpu.lab.example", HttpMethod.Get, "models", ct);
        using var notListed = await FromPageAtAsync(named, "evil.example", HttpMethod.Get, "models", ct);
        using var anyName = await FromPageAtAsync(any, "evil.example", HttpMethod.Get, "models", ct);

        Assert.Equal(HttpStatusCode.MisdirectedRequest, native.StatusCode);
        var nativeError = await ErrorAsync(native, ct);
        Assert.Equal("host_not_allowed", nativeError.GetProperty("code").GetString());
        Assert.Contains("Anteroom:AllowedHosts", nativeError.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, openAI.StatusCode);
        Assert.Equal("host_not_allowed", await ErrorCodeAsync(openAI, ct));
        Assert.Equal(HttpStatusCode.MisdirectedRequest, ollama.StatusCode);
        Assert.Contains("evil.example", (await ErrorAsync(ollama, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, page.StatusCode);
        Assert.Equal(HttpStatusCode.OK, byAddress.StatusCode);
        Assert.Equal(HttpStatusCode.OK, byLocalhost.StatusCode);
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, subdomain.StatusCode);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, notListed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, anyName.StatusCode);
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Theory]
    [InlineData("keys", "http://0.0.0.0:0", true)]
    [InlineData("keys", "http://127.0.0.1:0", false)]
    [InlineData("open", "http://0.0.0.0:0", false)]
    public async Task KeysModeOnPlainHttpReachableFromOtherMachines_IsWarnedAboutAtStart(string mode, string urls, bool warned)
    {
        var logs = new CapturedLogs();
        var settings = new Dictionary<string, string?> { ["urls"] = urls, ["Anteroom:Auth:Mode"] = mode };
        await using (await TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings, logs))
        {
        }

        Assert.Equal(warned, logs.Warnings.Any(m => m.Contains("plain http", StringComparison.Ordinal) && m.Contains("Secure", StringComparison.Ordinal)));
    }

    [Fact]
    public void ASessionUnusedForTheIdleWindow_NoLongerCountsAgainstItsAddress_AndOneInUseKeepsCounting()
    {
        var time = new FakeTimeProvider();
        var options = Options.Create(new AnteroomOptions { Auth = new AuthOptions { MaxSessionsPerAddress = 1 } });
        var sessions = new BrowserSessions(new EphemeralDataProtectionProvider(), options, time);
        string first = sessions.CookieValue(TestGateway.SessionOf("first"));
        string second = sessions.CookieValue(TestGateway.SessionOf("second"));

        var firstHeld = sessions.Find(Browser(first));
        var secondWhileFirstHeld = sessions.Find(Browser(second));
        time.Advance(BrowserSessions.IdleWindow - TimeSpan.FromSeconds(1));
        var firstUsedAgain = sessions.Find(Browser(first));
        time.Advance(TimeSpan.FromSeconds(2));
        var secondAfterOnlyTwoSeconds = sessions.Find(Browser(second));
        time.Advance(BrowserSessions.IdleWindow);
        var secondOnceFirstIsIdle = sessions.Find(Browser(second));

        Assert.NotNull(firstHeld.Owner);
        Assert.True(secondWhileFirstHeld.IsRefused);
        Assert.Equal(BrowserSessions.IdleWindow, secondWhileFirstHeld.RefusedFor);
        Assert.Equal(firstHeld.Owner, firstUsedAgain.Owner);
        Assert.True(secondAfterOnlyTwoSeconds.IsRefused);
        Assert.NotNull(secondOnceFirstIsIdle.Owner);
        Assert.NotEqual(firstHeld.Owner, secondOnceFirstIsIdle.Owner);
    }

    private static DefaultHttpContext Browser(string cookie)
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse("203.0.113.7");
        context.Request.Headers.Cookie = $"{BrowserSessions.CookieName}={cookie}";
        return context;
    }

    /// <summary>A new browser's first visit: its session cookie, and the name the gateway shows it by.</summary>
    private static async Task<(string Cookie, string Name)> NewSessionAsync(TestGateway gateway, CancellationToken cancellationToken)
    {
        using var response = await gateway.Client().GetAsync("session", cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (CookiePair(response, BrowserSessions.CookieName), await UserAsync(response, cancellationToken));
    }

    private static async Task<string> SignInAsync(TestGateway gateway, string key, CancellationToken cancellationToken)
    {
        using var response = await gateway.Client().PostAsJsonAsync("session", new { key }, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return CookiePair(response, Authenticator.KeyCookie);
    }

    private static string CookiePair(HttpResponseMessage response, string name) =>
        response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(name + "=", StringComparison.Ordinal)).Split(';')[0];

    private static async Task<string> UserAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return body.RootElement.GetProperty("user").GetString()!;
    }

    private static async Task<HttpResponseMessage> SendWithCookieAsync(
        TestGateway gateway, HttpMethod method, string path, string cookie, CancellationToken cancellationToken, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Add("Cookie", cookie);
        return await gateway.Client().SendAsync(request, cancellationToken);
    }

    /// <summary>A request as a page served from <paramref name="host"/> sends it to its own origin, which now resolves to the gateway.</summary>
    private static async Task<HttpResponseMessage> FromPageAtAsync(
        TestGateway gateway, string host, HttpMethod method, string path, CancellationToken cancellationToken, object? body = null)
    {
        string authority = $"{host}:{gateway.Address.Port}";
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Host = authority;
        request.Headers.Add("Origin", "http://" + authority);
        request.Headers.Add("Accept", "text/html, application/json");
        return await gateway.Client().SendAsync(request, cancellationToken);
    }

    private sealed class CapturedLogs : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _warnings = new();

        public IEnumerable<string> Warnings => _warnings;

        public ILogger CreateLogger(string categoryName) => new Logger(_warnings);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> warnings) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                {
                    warnings.Enqueue(formatter(state, exception));
                }
            }
        }
    }
}
