using System.Net;
using System.Net.Http.Json;
using Anteroom.Requests;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Anteroom.Tests.Logging;

/// <summary>
/// The log a default run writes: with the levels Anteroom ships in appsettings.json, one Anteroom line per request
/// (the access log) and nothing from the web framework per HTTP exchange.
/// </summary>
public sealed class AccessLogTests
{
    private const string Model = "qwen2.5:7b";

    [Fact]
    public async Task WithTheShippedLogLevels_EachRequestWritesExactlyOneAnteroomLine_AndTheFrameworkNothing()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var ct = timeout.Token;
        var logs = new CapturedLogs();
        var simulator = TestGateway.FastSimulator();
        simulator.Models = [Model];
        var gateway = await TestGateway.StartAsync([new TestBackend("vllm-gpu", simulator, Protocol: "openai")], ShippedLogLevels(), logs);
        var ids = new List<string>();
        try
        {
            // What start-up prints is not per request. Its last line comes once the server has started, which the
            // test host may report a moment before.
            await logs.WaitUntilAsync(lines => lines.Any(line => line.Message.StartsWith("Anteroom is listening", StringComparison.Ordinal)), ct);
            logs.Clear();
            var client = gateway.Client();
            foreach (var (path, body) in new (string, object)[]
            {
                ("v1/chat/completions", new { model = Model, messages = new[] { new { role = "user", content = "Hello." } } }),
                ("v1/chat/completions", new { model = Model, stream = true, messages = new[] { new { role = "user", content = "Hello." } } }),
                ("api/chat", new { model = Model, stream = false, messages = new[] { new { role = "user", content = "Hello." } } }),
            })
            {
                using var response = await client.PostAsJsonAsync(path, body, ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                await response.Content.ReadAsStringAsync(ct);
                ids.Add(Assert.Single(response.Headers.GetValues("X-Request-Id")));
            }

            using (var refused = await client.PostAsJsonAsync("v1/chat/completions", new { model = "no-such-model", messages = new[] { new { role = "user", content = "Hello." } } }, ct))
            {
                Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
            }

            // A request is logged when it is settled, which may come just after its answer has been read.
            await logs.WaitUntilAsync(lines => lines.Count(line => line.Category == RequestAccessLog.Category) >= 4, ct);
        }
        finally
        {
            // Stopped, the server has finished and logged every exchange: nothing can still arrive.
            await gateway.DisposeAsync();
        }

        var lines = logs.Lines;
        Assert.Empty(lines.Where(line => line.Category.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)).Select(line => $"{line.Category}: {line.Message}"));
        var anteroom = lines.Where(line => line.Category.StartsWith("Anteroom", StringComparison.Ordinal)).ToList();
        Assert.All(anteroom, line => Assert.Equal(RequestAccessLog.Category, line.Category));
        Assert.All(anteroom, line => Assert.Equal(LogLevel.Information, line.Level));

        var finished = anteroom.Where(line => line.Fields.ContainsKey("Outcome")).ToList();
        Assert.Equal(ids.Order(), finished.Select(line => (string)line.Fields["RequestId"]!).Order());
        Assert.Equal(["ollama", "openai", "openai"], finished.Select(line => (string)line.Fields["Api"]!).Order());
        Assert.All(finished, line =>
        {
            Assert.Equal("completed", line.Fields["Outcome"]);
            Assert.Equal(Model, line.Fields["Model"]);
            Assert.Equal("vllm-gpu", line.Fields["Backend"]);
            Assert.InRange(Assert.IsType<int>(line.Fields["TokensOut"]), 1, 100);
            Assert.Contains($"user={line.Fields["User"]} model={Model} backend=vllm-gpu", line.Message, StringComparison.Ordinal);
        });

        var refusal = Assert.Single(anteroom.Except(finished));
        Assert.Equal("no-such-model", refusal.Fields["Model"]);
        Assert.Equal("model_not_found", refusal.Fields["Code"]);
        Assert.Contains("refused", refusal.Message, StringComparison.Ordinal);
    }

    /// <summary>The log levels of the appsettings.json that ships beside the gateway, over the test defaults.</summary>
    private static Dictionary<string, string?> ShippedLogLevels()
    {
        var shipped = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: false)
            .Build();
        var levels = shipped.GetSection("Logging:LogLevel").GetChildren().ToDictionary(level => $"Logging:LogLevel:{level.Key}", level => level.Value);
        Assert.NotEmpty(levels);
        return levels;
    }
}
