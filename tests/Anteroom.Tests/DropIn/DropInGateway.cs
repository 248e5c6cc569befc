using System.ClientModel;
using System.ClientModel.Primitives;
using Anteroom.Simulator;
using OllamaSharp;
using OpenAI;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// One gateway in front of a backend of each protocol. The model a request names picks its backend, and so whether
/// the gateway relays the client's bytes (same protocol) or translates them (the other protocol).
/// </summary>
internal static class DropInGateway
{
    /// <summary>Served only by <c>ollama-gpu</c>, an Ollama-protocol backend.</summary>
    public const string OnOllamaBackend = "llama3.1:8b";

    /// <summary>Served only by <c>vllm-gpu</c>, an OpenAI-protocol (vLLM-style) backend.</summary>
    public const string OnOpenAIBackend = "qwen2.5:7b";

    public const string OllamaBackend = "ollama-gpu";
    public const string OpenAIBackend = "vllm-gpu";

    public static string BackendOf(string model) => model == OnOllamaBackend ? OllamaBackend : OpenAIBackend;

    public static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    /// <summary>Starts the gateway; <paramref name="simulator"/> adjusts both simulators (timing, output length).</summary>
    public static Task<TestGateway> StartAsync(IDictionary<string, string?>? settings = null, Action<SimulatorOptions>? simulator = null)
    {
        SimulatorOptions Options(string model)
        {
            var options = TestGateway.FastSimulator();
            options.Models = [model];
            simulator?.Invoke(options);
            return options;
        }

        return TestGateway.StartAsync(
            [
                new TestBackend(OllamaBackend, Options(OnOllamaBackend), Protocol: "ollama"),
                new TestBackend(OpenAIBackend, Options(OnOpenAIBackend), Protocol: "openai"),
            ],
            settings ?? new Dictionary<string, string?>());
    }

    /// <summary>
    /// The official OpenAI client pointed at the gateway's <c>/v1</c>, exactly as an operator would configure it.
    /// Retries are off, so a test never passes only because the SDK quietly tried again.
    /// </summary>
    public static OpenAIClient OpenAIClient(this TestGateway gateway, Action<OpenAIClientOptions>? configure = null)
    {
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(gateway.Address, "v1"),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        };
        configure?.Invoke(options);
        return new OpenAIClient(new ApiKeyCredential("sk-any-key-will-do"), options);
    }

    /// <summary>OllamaSharp pointed at the gateway's root, where it expects an Ollama server.</summary>
    public static OllamaApiClient OllamaClient(this TestGateway gateway) => new(gateway.Address);
}

/// <summary>A gateway shared by the tests of one class that neither hold backends nor change settings.</summary>
public sealed class SharedDropInGateway : IAsyncLifetime
{
    private TestGateway? _gateway;

    internal TestGateway Gateway => _gateway ?? throw new InvalidOperationException("The gateway has not started.");

    public async Task InitializeAsync() => _gateway = await DropInGateway.StartAsync();

    public async Task DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }
}
