using Anteroom.TestServers;

namespace Anteroom.Tests.Cli;

/// <summary>
/// Bad configurations given to the real gateway process, to <c>serve</c> and to <c>check-config</c>: each stops it
/// with exit code 1 and one line naming each key to fix, never a stack trace. The runs take a process start each,
/// so the fixture starts them all at once (a few at a time) and every case reads its own.
/// </summary>
public sealed class ConfigurationErrorTests(ConfigurationErrorTests.Runs runs) : IClassFixture<ConfigurationErrorTests.Runs>
{
    private const string Backend = "--Anteroom:Backends:0:Name=gpu-a";
    private const string BackendUrl = "--Anteroom:Backends:0:Url=http://127.0.0.1:11434";
    private const string BackendModel = "--Anteroom:Backends:0:Models:0=llama3.1:8b";

    /// <summary>Each case: the arguments, and the start of each line it must print (one per problem).</summary>
    private static readonly Dictionary<string, (string[] Arguments, string[] Lines)> Cases = new()
    {
        ["a backend URL that is no URL"] = (
            [Backend, "--Anteroom:Backends:0:Url=notaurl", BackendModel],
            ["Anteroom:Backends:0:Url must be an absolute http or https URL such as 'http://127.0.0.1:11434' (got 'notaurl')."]),
        ["an unknown queue policy"] = (
            ["--Anteroom:Queue:Policy=lottery"],
            ["Anteroom:Queue:Policy must be 'fair' or 'fifo' (got 'lottery')."]),
        ["negative slots"] = (
            [Backend, BackendUrl, BackendModel, "--Anteroom:Backends:0:Slots=-2"],
            ["Anteroom:Backends:0:Slots must be at least 1 (got -2)."]),
        ["zero slots"] = (
            [Backend, BackendUrl, BackendModel, "--Anteroom:Backends:0:Slots=0"],
            ["Anteroom:Backends:0:Slots must be at least 1 (got 0)."]),
        ["a backend without models"] = (
            [Backend, BackendUrl],
            ["Anteroom:Backends:0:Models must list at least one model name"]),
        ["two backends of one name"] = (
            [Backend, BackendUrl, BackendModel,
                "--Anteroom:Backends:1:Name=gpu-a", "--Anteroom:Backends:1:Url=http://127.0.0.1:11435", "--Anteroom:Backends:1:Models:0=llama3.1:8b"],
            ["Anteroom:Backends:1:Name 'gpu-a' is used by another backend; names must be unique."]),
        ["an unknown backend protocol"] = (
            [Backend, BackendUrl, BackendModel, "--Anteroom:Backends:0:Protocol=grpc"],
            ["Anteroom:Backends:0:Protocol must be 'ollama' or 'openai' (got 'grpc')."]),
        ["a word where a number belongs"] = (
            ["--Anteroom:Queue:MaxWaitSeconds=abc"],
            ["Anteroom:Queue:MaxWaitSeconds must be a number (got 'abc')."]),
        ["a fraction where a whole number belongs"] = (
            [Backend, BackendUrl, BackendModel, "--Anteroom:Backends:0:Slots=1.5"],
            ["Anteroom:Backends:0:Slots must be a whole number (got '1.5')."]),
        ["an unknown auth mode"] = (
            ["--Anteroom:Auth:Mode=password"],
            ["Anteroom:Auth:Mode must be 'open' or 'keys' (got 'password')."]),
        ["a CORS origin with a path"] = (
            ["--Anteroom:Cors:Origins:0=https://app.example.com/chat"],
            ["Anteroom:Cors:Origins entry 'https://app.example.com/chat' must be an origin such as 'https://app.example.com'"]),
        ["a tier limited to a model no backend serves"] = (
            [Backend, BackendUrl, BackendModel, "--Anteroom:Tiers:free:Models:0=gpt-4"],
            ["Anteroom:Tiers:free:Models names 'gpt-4', which no configured backend serves."]),
        ["a tier weight that is no number"] = (
            ["--Anteroom:Tiers:free:Weight=heavy"],
            ["Anteroom:Tiers:free:Weight must be a number (got 'heavy')."]),
        ["a backend, besides a good one, with slots that are no number"] = (
            [Backend, BackendUrl, BackendModel,
                "--Anteroom:Backends:1:Name=gpu-b", "--Anteroom:Backends:1:Url=http://127.0.0.1:11435", "--Anteroom:Backends:1:Models:0=llama3.1:8b",
                "--Anteroom:Backends:1:Slots=many"],
            ["Anteroom:Backends:1:Slots must be a whole number (got 'many')."]),
        ["a log level that is no level"] = (
            ["--Logging:LogLevel:Default=loud"],
            ["Logging:LogLevel:Default must be a log level: Trace, Debug, Information, Warning, Error, Critical or None (got 'loud')."]),
        ["a default model the built-in simulator does not serve"] = (
            ["--Anteroom:DefaultModel=mistral:7b"],
            ["Anteroom:DefaultModel 'mistral:7b' is not served by any configured backend."]),
        ["a Redis prefix with a space"] = (
            ["--Anteroom:Redis:Prefix=two words"],
            ["Anteroom:Redis:Prefix must be 1 to 64 letters, digits, '-', '_', '.' or ':' (got 'two words')."]),
        ["a Redis lease below two seconds"] = (
            ["--Anteroom:Redis:LeaseSeconds=1"],
            ["Anteroom:Redis:LeaseSeconds must be between 2 and 600 (got 1)"]),
        ["a PostgreSQL setting that is no connection string"] = (
            ["--Anteroom:Storage:Postgres=Host=db;Colour=blue;Password=hunter2"],
            ["Anteroom:Storage:Postgres is not a valid PostgreSQL connection string"]),
        ["several problems, each on its own line"] = (
            ["--Anteroom:Queue:Policy=lottery", "--Anteroom:Queue:MaxWaitingPerUser=0", "--Anteroom:Queue:MaxDispatchAttempts=often", "--Anteroom:Redis:LeaseSeconds=x"],
            [
                "Anteroom:Queue:MaxDispatchAttempts must be a whole number (got 'often').",
                "Anteroom:Redis:LeaseSeconds must be a number (got 'x').",
                "Anteroom:Queue:Policy must be 'fair' or 'fifo' (got 'lottery').",
                "Anteroom:Queue:MaxWaitingPerUser must be at least 1 (got 0).",
            ]),
    };

    public static TheoryData<string, string> CommandsAndCases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (string command in Runs.Commands)
            {
                foreach (string name in Cases.Keys)
                {
                    data.Add(command, name);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(CommandsAndCases))]
    public void BadConfiguration_PrintsOneLinePerKeyToFix_AndExitsOne_WithoutAStackTrace(string command, string configuration)
    {
        var run = runs.Result(command, configuration);

        Assert.True(run.EndedByItself, run.ToString());
        Assert.Equal(1, run.Exit);
        var expected = Cases[configuration].Lines;
        // A heading, then exactly one line per problem, each naming its key.
        Assert.True(run.ErrorLines.Length == expected.Length + 1, run.ToString());
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.StartsWith("- " + expected[i], run.ErrorLines[i + 1], StringComparison.Ordinal);
        }

        Assert.DoesNotContain("Exception", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(run.ErrorLines, line => line.StartsWith("at ", StringComparison.Ordinal));
        Assert.DoesNotContain("hunter2", run.Output + run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", run.Output, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Every case run once per command, all started together a few at a time, on loopback ports of their own.</summary>
    public sealed class Runs : IAsyncLifetime
    {
        public static readonly string[] Commands = ["serve", "check-config"];

        private readonly string _directory = TestGateway.NewDataDirectory();
        private IReadOnlyDictionary<(string Command, string Case), AnteroomRun> _results = new Dictionary<(string, string), AnteroomRun>();

        public async Task InitializeAsync()
        {
            // A port nobody uses, and the working directory as the data directory: a gateway that wrongly starts
            // touches nothing shared.
            _results = await AnteroomRun.StartAllAsync(_directory, Commands.SelectMany(command => Cases.Select(c => (
                (command, c.Key),
                (string[])[command, "--urls", $"http://127.0.0.1:{ServerProcess.FreePort()}", "--Anteroom:Data:Directory=.", .. c.Value.Arguments],
                (IReadOnlyDictionary<string, string>?)null,
                (string?)null))));
        }

        internal AnteroomRun Result(string command, string name) => _results[(command, name)];

        public Task DisposeAsync()
        {
            Directory.Delete(_directory, recursive: true);
            return Task.CompletedTask;
        }
    }
}
