using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using static Anteroom.Tests.ConversationHttp;

namespace Anteroom.Tests.Access;

/// <summary>The request log as the operator reads it through the admin API: usage per user, tier and hour, and each request.</summary>
public sealed class RequestLogTests
{
    private static Dictionary<string, string?> Settings(string directory) => new()
    {
        ["Anteroom:Data:Directory"] = directory,
        ["Anteroom:Tiers:gold:Weight"] = "2",
    };

    private static Task<TestGateway> StartAsync(IDictionary<string, string?> settings) =>
        TestGateway.StartAsync([new TestBackend("gpu", TestGateway.FastSimulator())], settings);

    [Fact]
    public async Task Usage_AndRequests_ShowCompletedAndRefusedRequests_PerUserAndTier_AndSurviveARestart()
    {
        var ct = Within30Seconds();
        string directory = TestGateway.NewDataDirectory();
        try
        {
            string adminKey;
            JsonElement alicesAnswer;
            JsonElement bobsAnswer;
            await using (var first = await StartAsync(Settings(directory)))
            {
                adminKey = await first.CreateKeyAsync("root", admin: true);
                var alice = first.KeyClient(await first.CreateKeyAsync("alice", tier: "gold"));
                alicesAnswer = await ChatAsync(alice, new { message = "Hello from Alice", max_tokens = 5 }, ct);
                var refused = await SendAsync(alice, HttpMethod.Post, "chat", HttpStatusCode.NotFound, ct, new { message = "hi", model = "no-such-model" });
                Assert.Equal("model_not_found", Error(refused).Code);
                bobsAnswer = await ChatAsync(first.Client("bob"), new { message = "Hello from Bob", max_tokens = 4 }, ct);
                // Disposing the gateway writes out whatever the log still holds.
            }

            await using var second = await StartAsync(Settings(directory));
            var admin = second.KeyClient(adminKey);
            var usage = await SendAsync(admin, HttpMethod.Get, "admin/usage?hours=1", HttpStatusCode.OK, ct);
            var logged = await SendAsync(admin, HttpMethod.Get, "admin/requests?hours=1", HttpStatusCode.OK, ct);
            var alicesOnly = await SendAsync(admin, HttpMethod.Get, "admin/requests?owner=user:alice&limit=1", HttpStatusCode.OK, ct);

            var users = usage.GetProperty("users").EnumerateArray().ToDictionary(u => Text(u, "owner"));
            Assert.Equal(2, users.Count);
            var aliceRow = users["user:alice"];
            Assert.Equal("alice", Text(aliceRow, "name"));
            Assert.Equal((1L, 1L, 1L), (Long(aliceRow, "requests"), Long(aliceRow, "completed"), Long(aliceRow, "refused")));
            Assert.Equal(1, aliceRow.GetProperty("refused_by_reason").GetProperty("model_not_found").GetInt64());
            Assert.Equal(Usage(alicesAnswer, "prompt_tokens"), Long(aliceRow, "tokens_in"));
            Assert.Equal(5, Long(aliceRow, "tokens_out"));
            var bobRow = users.Single(u => u.Key.StartsWith("browser:", StringComparison.Ordinal)).Value;
            Assert.Equal((1L, 1L, 0L), (Long(bobRow, "requests"), Long(bobRow, "completed"), Long(bobRow, "refused")));
            Assert.Empty(bobRow.GetProperty("refused_by_reason").EnumerateObject());
            Assert.Equal((Usage(bobsAnswer, "prompt_tokens"), 4L), (Long(bobRow, "tokens_in"), Long(bobRow, "tokens_out")));
            Assert.True(Long(bobRow, "tokens_in") > 0);

            var tiers = usage.GetProperty("tiers").EnumerateArray().ToDictionary(t => Text(t, "name"));
            Assert.Equal(["default", "gold"], tiers.Keys.Order());
            Assert.Equal((1L, 1L, 1L), (Long(tiers["gold"], "requests"), Long(tiers["gold"], "completed"), Long(tiers["gold"], "refused")));
            Assert.Equal(1, tiers["gold"].GetProperty("refused_by_reason").GetProperty("model_not_found").GetInt64());
            Assert.Equal((1L, 1L, 0L), (Long(tiers["default"], "requests"), Long(tiers["default"], "completed"), Long(tiers["default"], "refused")));
            Assert.False(tiers["gold"].TryGetProperty("owner", out _));

            var hours = usage.GetProperty("hours").EnumerateArray().ToList();
            Assert.NotEmpty(hours);
            Assert.Equal((2L, 1L), (hours.Sum(h => Long(h, "requests")), hours.Sum(h => Long(h, "refused"))));

            var entries = logged.GetProperty("requests").EnumerateArray().ToList();
            Assert.Equal(3, entries.Count);
            var completed = entries.Where(e => Text(e, "outcome") == "completed").ToDictionary(e => Text(e, "request_id"));
            Assert.Equal(new[] { Text(alicesAnswer, "request_id"), Text(bobsAnswer, "request_id") }.Order(), completed.Keys.Order());
            Assert.All(completed.Values, e =>
            {
                Assert.Equal(("gpu", "native", "llama3.1:8b"), (Text(e, "backend"), Text(e, "api"), Text(e, "model")));
                Assert.True(Long(e, "waited_ms") >= 0);
                Assert.True(Long(e, "tokens_in") > 0);
                Assert.True(Long(e, "tokens_out") > 0);
                Assert.False(e.TryGetProperty("reason", out _));
            });
            var aliceCompleted = completed[Text(alicesAnswer, "request_id")];
            Assert.Equal(("alice", "user:alice", "gold"), (Text(aliceCompleted, "user"), Text(aliceCompleted, "owner"), Text(aliceCompleted, "tier")));
            Assert.Equal(16, Text(aliceCompleted, "key_id").Length);
            var refusal = Assert.Single(entries, e => Text(e, "outcome") == "refused");
            Assert.Equal(("model_not_found", "no-such-model", "user:alice"), (Text(refusal, "reason"), Text(refusal, "model"), Text(refusal, "owner")));
            Assert.False(refusal.TryGetProperty("backend", out _));
            Assert.Equal((0L, 0L), (Long(refusal, "tokens_in"), Long(refusal, "tokens_out")));
            // Newest first; the owner filter and the limit apply.
            Assert.Equal(entries.Select(e => e.GetProperty("at").GetDateTimeOffset()).OrderDescending(), entries.Select(e => e.GetProperty("at").GetDateTimeOffset()));
            var onlyAlice = Assert.Single(alicesOnly.GetProperty("requests").EnumerateArray());
            Assert.Equal("user:alice", Text(onlyAlice, "owner"));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task QueueLimitRefusals_AreCountedByReason()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?> { ["Anteroom:Queue:MaxWaitingPerUser"] = "1" });
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var greedy = gateway.Client("greedy");
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(greedy, new { message = "one" }, ct);
        await running.ReadUntilAsync(ct, "started");
        using var waiting = await SseStream.ChatAsync(greedy, new { message = "two" }, ct);
        await waiting.ReadUntilAsync(ct, "queued");

        var refused = await SendAsync(greedy, HttpMethod.Post, "chat", HttpStatusCode.TooManyRequests, ct, new { message = "three" });
        gateway.Simulator("gpu").Release();
        await running.ReadToEndAsync(ct);
        await waiting.ReadToEndAsync(ct);
        // Both answers were seen, so both entries are recorded: the flush makes them readable.
        await gateway.Services.GetRequiredService<Anteroom.Storage.IRequestLog>().FlushAsync(ct);
        var usage = await SendAsync(admin, HttpMethod.Get, "admin/usage", HttpStatusCode.OK, ct);

        Assert.Equal("user_queue_full", Error(refused).Code);
        var row = Assert.Single(usage.GetProperty("users").EnumerateArray());
        Assert.Equal((2L, 2L, 1L), (Long(row, "requests"), Long(row, "completed"), Long(row, "refused")));
        Assert.Equal(1, row.GetProperty("refused_by_reason").GetProperty("user_queue_full").GetInt64());
    }

    [Fact]
    public async Task ACallerHammeringALimit_WritesABoundedNumberOfRefusalsPerMinute_WhileEveryRefusalIsStillAnswered()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?>
            {
                ["Anteroom:Data:MaxRefusalsLoggedPerUserPerMinute"] = "5",
                ["Anteroom:Tiers:default:Models:0"] = "llama3.1:8b",
            });
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var hammer = gateway.Client("hammer");
        var other = gateway.Client("other");

        for (int i = 0; i < 40; i++)
        {
            await SendAsync(hammer, HttpMethod.Post, "chat", HttpStatusCode.Forbidden, ct, new { message = "hi", model = "forbidden-model" });
        }

        await SendAsync(other, HttpMethod.Post, "chat", HttpStatusCode.Forbidden, ct, new { message = "hi", model = "forbidden-model" });
        await gateway.Services.GetRequiredService<Anteroom.Storage.IRequestLog>().FlushAsync(ct);
        var logged = await SendAsync(admin, HttpMethod.Get, "admin/requests?limit=1000", HttpStatusCode.OK, ct);

        // Five of the hammer's forty refusals (ten if the minute turned meanwhile), and the other caller's one: a
        // budget per caller, not shared.
        var perOwner = logged.GetProperty("requests").EnumerateArray().GroupBy(e => Text(e, "owner")).Select(g => g.Count()).Order().ToList();
        Assert.True(perOwner.Count == 2, logged.ToString());
        Assert.Equal(1, perOwner[0]);
        Assert.InRange(perOwner[1], 5, 10);
    }

    [Fact]
    public async Task EveryRequest_IsRecordedBeforeItsClientSeesTheEnd()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var log = gateway.Services.GetRequiredService<Anteroom.Storage.IRequestLog>();
        var alice = gateway.Client("alice");

        // A flush covers what was recorded before it: straight after each answer, several rounds.
        for (int round = 1; round <= 50; round++)
        {
            var answer = await ChatAsync(alice, new { message = $"Round {round}", max_tokens = 2 }, ct);
            await log.FlushAsync(ct);
            var logged = await SendAsync(admin, HttpMethod.Get, "admin/requests?limit=1", HttpStatusCode.OK, ct);

            var entry = Assert.Single(logged.GetProperty("requests").EnumerateArray());
            Assert.Equal((Text(answer, "request_id"), "completed"), (Text(entry, "request_id"), Text(entry, "outcome")));
        }
    }

    [Fact]
    public async Task NonAdmins_Get403AdminOnly()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        var ordinaryKey = gateway.KeyClient(await gateway.CreateKeyAsync("alice"));

        foreach (var client in new[] { gateway.Client("alice"), gateway.Client(), ordinaryKey })
        {
            foreach (string path in new[] { "admin/usage", "admin/requests", "admin/keys" })
            {
                var refused = await SendAsync(client, HttpMethod.Get, path, HttpStatusCode.Forbidden, ct);
                Assert.Equal("admin_only", Error(refused).Code);
            }
        }
    }

    [Fact]
    public async Task BadQuery_Gets400_NotA500()
    {
        var ct = Within30Seconds();
        await using var gateway = await TestGateway.StartAsync(new TestBackend("gpu", TestGateway.FastSimulator()));
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        string[] queries =
        [
            "admin/usage?hours=abc", "admin/usage?hours=0", "admin/usage?hours=-1", "admin/usage?hours=NaN", "admin/usage?hours=1e9",
            "admin/usage?since=yesterday", "admin/usage?until=soon",
            "admin/usage?since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z",
            "admin/requests?limit=0", "admin/requests?limit=abc", "admin/requests?limit=-5", "admin/requests?limit=1001", "admin/requests?hours=abc",
        ];

        var answers = new List<(string Query, HttpStatusCode Status, string Body)>();
        foreach (string query in queries)
        {
            using var response = await admin.GetAsync(query, ct);
            answers.Add((query, response.StatusCode, await response.Content.ReadAsStringAsync(ct)));
        }

        Assert.All(answers, answer =>
        {
            Assert.True(answer.Status == HttpStatusCode.BadRequest, $"{answer.Query}: {(int)answer.Status} {answer.Body}");
            using var body = JsonDocument.Parse(answer.Body);
            Assert.Equal("invalid_request", Error(body.RootElement).Code);
        });
        // The same endpoints answer well-formed queries.
        await SendAsync(admin, HttpMethod.Get, "admin/usage?hours=0.5", HttpStatusCode.OK, ct);
        await SendAsync(admin, HttpMethod.Get, "admin/requests?limit=1000", HttpStatusCode.OK, ct);
    }

    private static long Long(JsonElement element, string property) => element.GetProperty(property).GetInt64();

    private static long Usage(JsonElement chatResult, string property) => chatResult.GetProperty("usage").GetProperty(property).GetInt64();
}
