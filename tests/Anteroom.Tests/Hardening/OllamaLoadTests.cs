using System.Net;
using System.Net.Http.Json;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Hardening;

/// <summary>Ollama's "load the model" requests (no prompt, no messages) pass the same model and tier checks as a generation.</summary>
public sealed class OllamaLoadTests
{
    [Theory]
    [InlineData("api/generate")]
    [InlineData("api/chat")]
    public async Task Load_OfAModelNoBackendServes_Gets404LikeOllama(string path)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);

        using var response = await gateway.Client().PostAsJsonAsync(path, new { model = "no-such-model:70b" }, ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("model 'no-such-model:70b' not found", (await ErrorAsync(response, ct)).GetString());
    }

    [Theory]
    [InlineData("api/generate")]
    [InlineData("api/chat")]
    public async Task Load_OfAModelOutsideTheTier_Gets403_AndOfAnAllowedOneLoads(string path)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(new Dictionary<string, string?> { ["Anteroom:Tiers:small:Models:0"] = OnOllamaBackend });
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "small"));

        using var forbidden = await client.PostAsJsonAsync(path, new { model = OnOpenAIBackend }, ct);
        using var allowed = await client.PostAsJsonAsync(path, new { model = OnOllamaBackend }, ct);

        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains("may not use model", (await ErrorAsync(forbidden, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Contains("\"done_reason\":\"load\"", await allowed.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task Load_WhenNoBackendOfTheModelIsHealthy_Gets503WithRetryAfter()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        await gateway.Queue.SetBackendHealthAsync(OllamaBackend, false);

        using var response = await gateway.Client().PostAsJsonAsync("api/generate", new { model = OnOllamaBackend }, ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
    }
}
