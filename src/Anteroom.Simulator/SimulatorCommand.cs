using System.Runtime.InteropServices;

namespace Anteroom.Simulator;

/// <summary><c>anteroom simulate …</c>: runs a simulated model server from the command line until stopped.</summary>
public static class SimulatorCommand
{
    /// <summary>Where the simulator listens unless <c>--urls</c> says otherwise: Ollama's own port.</summary>
    internal const string DefaultUrl = "http://127.0.0.1:11434";

    internal const string Usage = """
        usage: anteroom simulate [flags]
          --urls URL[;URL]              where to listen (default http://127.0.0.1:11434)
          --models a,b                  model names served (default llama3.1:8b)
          --parallel N                  generations at once, shared by all models (default 1)
          --max-queue M                 requests that may wait for a slot; more get 503 (default 512)
          --batching                    continuous batching: no slot limit, slower tokens as load grows
          --batch-knee K                running generations where batching turns steep (default 16)
          --ttft-ms X                   time to first token when warm, before prompt evaluation (default 40)
          --tokens-per-second X         generation speed of one stream (default 80)
          --output-tokens N             mean answer length, varied by ±50% (default 64)
          --fail-before-first-token R   share of requests failing with HTTP 500 (0..1)
          --fail-mid-stream R           share ending in the protocol's in-stream error (0..1)
          --stall R                     share that stop sending and hold until the client leaves (0..1)
          --disconnect R                share whose connection is aborted mid-stream (0..1)
          --seed N                      seed of every random choice (default 1)
        """;

    /// <summary>Parses <paramref name="args"/>, serves until <paramref name="cancellationToken"/> fires or the process gets Ctrl-C or SIGTERM.</summary>
    /// <returns>0 after a clean stop, 1 when the address cannot be bound, 2 for bad flags.</returns>
    public static Task<int> RunAsync(string[] args, CancellationToken cancellationToken = default) =>
        RunAsync(args, Console.Out, Console.Error, cancellationToken);

    internal static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Any(arg => arg is "--help" or "-h"))
        {
            await output.WriteLineAsync(Usage);
            return 0;
        }

        SimulatorOptions options;
        string url;
        try
        {
            options = SimulatorOptions.Parse(args);
            url = SimulatorArguments.Urls(args) ?? DefaultUrl;
        }
        catch (ArgumentException exception)
        {
            await error.WriteLineAsync($"anteroom simulate: {exception.Message}");
            await error.WriteLineAsync("Run 'anteroom simulate --help' for its flags.");
            return 2;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Stop(context, stop));
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Stop(context, stop));

        SimulatedModelServer server;
        try
        {
            server = await SimulatedModelServer.StartAsync(options, url, cancellationToken: stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        catch (IOException exception)
        {
            await error.WriteLineAsync($"anteroom simulate: cannot listen on {url}: {exception.Message}");
            return 1;
        }

        await using (server)
        {
            foreach (var address in server.Addresses)
                await output.WriteLineAsync($"Simulated model server listening on {address}");
            await output.WriteLineAsync($"Models: {string.Join(", ", options.Models)}");
            await output.FlushAsync(CancellationToken.None);
            await Task.Delay(Timeout.InfiniteTimeSpan, stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return 0;
    }

    private static void Stop(PosixSignalContext context, CancellationTokenSource stop)
    {
        // Shut down cleanly instead of letting the runtime end the process.
        context.Cancel = true;
        stop.Cancel();
    }
}
