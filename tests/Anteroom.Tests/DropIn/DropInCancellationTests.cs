using System.Net.Http.Json;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.DropIn;

/// <summary>A drop-in client that leaves stops its request: out of the queue while waiting, off the backend while running.</summary>
public sealed class DropInCancellationTests
{
    [Theory]
    [InlineData("openai", OnOpenAIBackend)]
    [InlineData("openai", OnOllamaBackend)]
    [InlineData("ollama", OnOllamaBackend)]
    [InlineData("ollama", OnOpenAIBackend)]
    public async Task ClientLeavingMidStream_StopsTheBackendGeneration(string api, string model)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(simulator: simulator =>
        {
            simulator.TokensPerSecond = 50;
            simulator.OutputTokens = 2000;
        });
        var simulator = gateway.Simulator(BackendOf(model));
        var response = api == "openai"
            ? await DropInHttp.OpenAIStreamAsync(gateway.Client("a"), model, ct)
            : await DropInHttp.OllamaStreamAsync(gateway.Client("a"), model, ct);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        // A piece of the answer proves the generation is running on the backend.
        await DropInHttp.ReadLineUntilAsync(reader, line => line.Contains("\"content\":\"", StringComparison.Ordinal), ct);

        reader.Dispose();
        response.Dispose();
        await simulator.WaitUntilAsync(s => s.Cancelled == 1 && s.Active == 0, ct);
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1 && s.Running == 0, ct);

        Assert.Equal(0, simulator.Stats.Completed);
    }

    [Theory]
    [InlineData("v1/chat/completions", true)]
    [InlineData("v1/chat/completions", false)]
    [InlineData("api/chat", true)]
    [InlineData("api/chat", false)]
    public async Task ClientLeavingWhileWaiting_TakesItsTicketOutOfTheQueue(string path, bool stream)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var simulator = gateway.Simulator(OllamaBackend);
        simulator.Hold();
        using var running = await DropInHttp.OllamaStreamAsync(gateway.Client("a"), OnOllamaBackend, ct);
        using var leaving = new CancellationTokenSource();
        var waiting = gateway.Client("b").PostAsJsonAsync(
            path, new { model = OnOllamaBackend, stream, messages = new[] { new { role = "user", content = "hi" } } }, leaving.Token);
        await gateway.WaitForSchedulerAsync(s => s.Waiting == 1, ct);

        leaving.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1 && s.Waiting == 0, ct);

        Assert.Equal(1, (await gateway.Queue.GetSnapshotAsync()).Running);
        simulator.Release();
    }

    [Fact]
    public async Task HeadOfTheRoot_AnswersLikeOllama()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();

        using var head = await gateway.Client().SendAsync(new HttpRequestMessage(HttpMethod.Head, ""), ct);

        Assert.Equal(System.Net.HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("text/plain", head.Content.Headers.ContentType?.MediaType);
    }
}
