using System.Net;
using System.Net.Http.Json;

namespace Anteroom.Tests.Health;

/// <summary>A backend that fails some first attempts still serves, and is not taken out of service for it.</summary>
public sealed class FlakyBackendTests
{
    [Fact]
    public async Task ABackendFailing30PercentBeforeTheFirstToken_AdmitsAndServesABurst_InsteadOfRefusingIt()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        var simulator = TestGateway.FastSimulator();
        // Exactly 3 of every 10 generations fail before the first token, three in a row: what opened the old circuit.
        simulator.FailBeforeFirstTokenRate = 0.3;
        simulator.FaultCycle = 10;
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", simulator)],
            new Dictionary<string, string?>
            {
                // No probe comes to the rescue during the test: only the circuit decides.
                ["Anteroom:Health:ProbeSeconds"] = "3600",
                ["Anteroom:Health:CooldownSeconds"] = "3600",
                ["Anteroom:Queue:MaxWaitSeconds"] = "10",
                ["Anteroom:Queue:MaxWaitingPerUser"] = "100",
                ["Anteroom:Queue:MaxInFlightPerUser"] = "100",
            });
        var client = gateway.Client();

        var responses = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            using var response = await client.PostAsJsonAsync(
                "v1/chat/completions", new { model = "llama3.1:8b", messages = new[] { new { role = "user", content = $"hello {i}" } } }, ct);
            return response.StatusCode;
        }));

        Assert.DoesNotContain(HttpStatusCode.ServiceUnavailable, responses);
        // One request in a cycle meets all three failures in a row and fails; the rest are served.
        Assert.True(responses.Count(s => s == HttpStatusCode.OK) >= 32, string.Join(", ", responses));
        Assert.True((await gateway.Queue.GetSnapshotAsync()).Backends.Single(b => b.Name == "gpu").Healthy);
    }
}
