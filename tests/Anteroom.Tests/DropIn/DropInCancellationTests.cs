using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.DropIn;

/// <summary>A drop-in client that leaves mid-stream stops the backend's generation, relayed or translated.</summary>
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
}
