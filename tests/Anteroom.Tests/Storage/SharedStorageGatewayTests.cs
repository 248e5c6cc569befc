using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Anteroom.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static Anteroom.Tests.ConversationHttp;

namespace Anteroom.Tests.Storage;

/// <summary>Two gateways on one PostgreSQL database share keys, conversations and the request log.</summary>
public sealed class SharedStorageGatewayTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private const int KeyCacheMilliseconds = 1000;

    private static Task<TestGateway> StartAsync(string database, FakeTimeProvider time) =>
        TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?>
            {
                ["Anteroom:Auth:Mode"] = "keys",
                ["Anteroom:Auth:KeyCacheMilliseconds"] = KeyCacheMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Anteroom:Storage:Postgres"] = database,
            },
            time: time);

    [Fact]
    public async Task KeysConversationsAndTheRequestLog_MadeThroughOneGateway_AreSeenThroughTheOther_AndARevocationReachesItWithinTheKeyCache()
    {
        var ct = Within30Seconds();
        string database = await postgres.Server.CreateDatabaseAsync(ct);
        // One clock for both: the key cache's window passes when the test says so.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var a = await StartAsync(database, time);
        await using var b = await StartAsync(database, time);
        var adminOnA = a.KeyClient(await a.CreateKeyAsync("ops", admin: true));

        var created = await SendAsync(adminOnA, HttpMethod.Post, "admin/keys", HttpStatusCode.Created, ct, new { user = "alice" });
        string token = Text(created, "key");
        string keyId = Text(created.GetProperty("details"), "id");
        var aliceOnA = a.KeyClient(token);
        var aliceOnB = b.KeyClient(token);

        var conversation = await CreateAsync(aliceOnA, ct, title: "Started on A");
        var listedOnB = await ListAsync(aliceOnB, ct);
        var answerOnA = await ChatAsync(aliceOnA, new { message = "Hello through A", max_tokens = 3 }, ct);
        var answerOnB = await ChatAsync(aliceOnB, new { message = "Hello through B", max_tokens = 3, conversation_id = Id(conversation) }, ct);
        var conversationOnA = await GetAsync(aliceOnA, Id(conversation), ct);
        await a.Services.GetRequiredService<IRequestLog>().FlushAsync(ct);
        await b.Services.GetRequiredService<IRequestLog>().FlushAsync(ct);
        // The clock stands still, so the period is given: the default one ends now, just before these requests' time.
        string period = $"since={Uri.EscapeDataString(time.GetUtcNow().AddHours(-1).ToString("O"))}&until={Uri.EscapeDataString(time.GetUtcNow().AddHours(1).ToString("O"))}";
        var loggedOnB = await SendAsync(b.KeyClient(await b.CreateKeyAsync("root", admin: true)), HttpMethod.Get, $"admin/requests?{period}", HttpStatusCode.OK, ct);

        Assert.Equal([(Id(conversation), "Started on A")], listedOnB.Select(c => (Id(c), Text(c, "title"))));
        Assert.Equal(["Hello through B", Text(answerOnB, "text")], Messages(conversationOnA).Select(m => Text(m, "content")));
        Assert.Equal(
            new[] { Text(answerOnA, "request_id"), Text(answerOnB, "request_id") }.Order(),
            loggedOnB.GetProperty("requests").EnumerateArray().Where(e => Text(e, "owner") == "user:alice").Select(e => Text(e, "request_id")).Order());

        await SendAsync(adminOnA, HttpMethod.Delete, $"admin/keys/{keyId}", HttpStatusCode.NoContent, ct);
        var refusedOnA = await SendAsync(aliceOnA, HttpMethod.Get, "models", HttpStatusCode.Unauthorized, ct);
        // B looked the key up a moment ago: within its cache window it still holds the old answer.
        await SendAsync(aliceOnB, HttpMethod.Get, "models", HttpStatusCode.OK, ct);
        time.Advance(TimeSpan.FromMilliseconds(KeyCacheMilliseconds));
        var refusedOnB = await SendAsync(aliceOnB, HttpMethod.Get, "models", HttpStatusCode.Unauthorized, ct);

        Assert.Equal("revoked_api_key", Error(refusedOnA).Code);
        Assert.Equal("revoked_api_key", Error(refusedOnB).Code);
        Assert.IsType<CachedKeyStore>(b.Services.GetRequiredService<IKeyStore>());
        Assert.IsType<PostgresStore>(b.Services.GetRequiredService<ISessionStore>());
        Assert.IsType<PostgresStore>(b.Services.GetRequiredService<IConversationStore>());
        Assert.IsType<PostgresStore>(b.Services.GetRequiredService<IRequestLog>());
    }

    [Fact]
    public async Task AnUnreachableDatabase_StopsTheGatewayAtStart_WithOneLineNamingTheSetting()
    {
        int closedPort = ClosedPort();
        string directory = TestGateway.NewDataDirectory();
        try
        {
            var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "anteroom.exe" : "anteroom"))
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                ArgumentList =
                {
                    "serve", "--urls", "http://127.0.0.1:0", $"--Anteroom:Data:Directory={directory}",
                    $"--Anteroom:Storage:Postgres=Host=127.0.0.1;Port={closedPort};Database=anteroom;Username=anteroom;Password=hunter2;Timeout=5",
                },
            };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync(Within30Seconds());
            string error = await process.StandardError.ReadToEndAsync(Within30Seconds());
            await process.WaitForExitAsync(Within30Seconds());
            await output;

            Assert.Equal(1, process.ExitCode);
            string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("Anteroom cannot start: ", line);
            Assert.Contains("Anteroom:Storage:Postgres", line);
            Assert.Contains($"127.0.0.1:{closedPort}", line);
            Assert.DoesNotContain("hunter2", line);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A loopback port nothing listens on: one just bound and released.</summary>
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
