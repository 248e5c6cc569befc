using System.Text;

namespace Anteroom.Simulator.Tests;

public sealed class SimulatorCommandTests
{
    [Fact]
    public async Task Run_BadFlag_PrintsTheProblemToStandardErrorAndExitsWith2()
    {
        var output = new StringWriter();
        var error = new StringWriter();

        var exit = await SimulatorCommand.RunAsync(["--parallel", "none"], output, error, CancellationToken.None);

        Assert.Equal(2, exit);
        Assert.Contains("--parallel", error.ToString(), StringComparison.Ordinal);
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public async Task Run_UnknownFlagWithAValue_NamesTheFlag_OnOneLine_WithAHintToAskForHelp()
    {
        var error = new StringWriter();

        var exit = await SimulatorCommand.RunAsync(["--parallel", "2", "--colour", "blue"], new StringWriter(), error, CancellationToken.None);

        Assert.Equal(2, exit);
        Assert.Equal(
            ["anteroom simulate: Unknown flag '--colour'.", "Run 'anteroom simulate --help' for its flags."],
            error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public async Task Run_BadUrls_ExitsWith2()
    {
        var error = new StringWriter();

        var exit = await SimulatorCommand.RunAsync(["--urls", "not a url"], new StringWriter(), error, CancellationToken.None);

        Assert.Equal(2, exit);
        Assert.Contains("--urls", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_AddressInUse_ExitsWith1()
    {
        await using var occupant = await SimulatedModelServer.StartAsync(new SimulatorOptions());
        var error = new StringWriter();

        var exit = await SimulatorCommand.RunAsync(["--urls", occupant.BaseAddress.ToString().TrimEnd('/')], new StringWriter(), error, CancellationToken.None);

        Assert.Equal(1, exit);
        Assert.Contains("cannot listen", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_PrintsTheAddressAndModels_ServesUntilCancelled_ThenExitsWith0()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var output = new SignallingWriter("Models:");

        var run = SimulatorCommand.RunAsync(["--urls", "http://127.0.0.1:0", "--models", "a:1b,b:2b"], output, new StringWriter(), stop.Token);
        await output.Seen.WaitAsync(stop.Token);
        var text = output.ToString();
        var address = text.Split('\n').First(line => line.Contains("listening on", StringComparison.Ordinal)).Split("listening on ")[1].Trim();
        using var client = new HttpClient();
        var banner = await client.GetStringAsync(new Uri(address), stop.Token);
        await stop.CancelAsync();

        Assert.Equal(0, await run);
        Assert.Equal("Ollama is running", banner);
        Assert.Contains("a:1b, b:2b", text, StringComparison.Ordinal);
    }

    /// <summary>Tells when a line containing a marker has been written, so the test need not poll the output.</summary>
    private sealed class SignallingWriter(string marker) : StringWriter
    {
        private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Seen => _seen.Task;

        public override Encoding Encoding => Encoding.UTF8;

        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(marker, StringComparison.Ordinal) == true)
                _seen.TrySetResult();
        }

        public override Task WriteLineAsync(string? value)
        {
            WriteLine(value);
            return Task.CompletedTask;
        }
    }
}
