using System.Reflection;

namespace Anteroom.Tests.Cli;

/// <summary>
/// The <c>anteroom</c> command line, run as the built program: help, version, mistakes in the command or its flags,
/// and <c>check-config</c>. The fixture starts every run at once (a few at a time); each test reads its own.
/// </summary>
public sealed class CommandLineTests(CommandLineTests.Runs runs) : IClassFixture<CommandLineTests.Runs>
{
    /// <summary>The help a way of asking prints: its first words.</summary>
    public static TheoryData<string, string> HelpRequests => new()
    {
        { "--help", "Usage: anteroom [command]" },
        { "-h", "Usage: anteroom [command]" },
        { "help", "Usage: anteroom [command]" },
        { "help serve", "Usage: anteroom serve" },
        { "serve --help", "Usage: anteroom serve" },
        { "--urls http://127.0.0.1:1 -h", "Usage: anteroom serve" },
        { "check-config --help", "Usage: anteroom check-config" },
        { "help check-config", "Usage: anteroom check-config" },
        { "simulate --help", "usage: anteroom simulate" },
        { "keys --help", "Usage:\n  anteroom keys create" },
        { "keys create --help", "Usage:\n  anteroom keys create" },
    };

    private static readonly string[] SecretSettings =
    [
        "--Anteroom:Backends:0:Name=gpu-a", "--Anteroom:Backends:0:Url=http://10.0.0.5:11434", "--Anteroom:Backends:0:Slots=2",
        "--Anteroom:Backends:0:Models:0=llama3.1:8b", "--Anteroom:Backends:0:Models:1=qwen2.5:7b",
        "--Anteroom:Backends:1:Name=gpu-b", "--Anteroom:Backends:1:Url=http://10.0.0.6:8000", "--Anteroom:Backends:1:Protocol=openai",
        "--Anteroom:Backends:1:Slots=16", "--Anteroom:Backends:1:Models:0=llama3.1:8b",
        "--Anteroom:Auth:Mode=keys",
        "--Anteroom:Storage:Postgres=Host=db.internal;Database=anteroom;Username=anteroom;Password=hunter2",
        "--Anteroom:Redis:Configuration=redis.internal:6380,password=s3cret-redis,ssl=true",
    ];

    [Theory]
    [MemberData(nameof(HelpRequests))]
    public void Help_PrintsThatCommandsUsage_AndExitsZero_WithoutListening(string arguments, string usage)
    {
        var run = runs.Result(arguments);

        Assert.True(run.EndedByItself, run.ToString());
        Assert.Equal(0, run.Exit);
        Assert.StartsWith(usage, run.Output.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Equal("", run.Error);
        Assert.DoesNotContain("listening", run.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Version_PrintsTheInformationalVersion_AndExitsZero()
    {
        var run = runs.Result("--version");
        string version = typeof(Anteroom.Configuration.AnteroomOptions).Assembly
            .GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;

        Assert.Equal(0, run.Exit);
        Assert.Equal(version, run.Output.Trim());
        Assert.Equal("", run.Error);
    }

    [Theory]
    [InlineData("frobnicate", "'frobnicate'", "anteroom --help")]
    [InlineData("simulate --parallel 2 --colour blue", "'--colour'", "anteroom simulate --help")]
    [InlineData("keys create --user alice --colour blue", "'--colour'", "anteroom keys --help")]
    [InlineData("keys list --all", "'--all'", "anteroom keys --help")]
    [InlineData("keys rotate", "'rotate'", "anteroom keys --help")]
    [InlineData("keys revoke", "KEY_ID", "anteroom keys --help")]
    public void AnUnknownCommandOrFlag_IsNamedOnOneLine_WithAHintToAskForHelp_AndExitsTwo(string arguments, string named, string hint)
    {
        var run = runs.Result(arguments);

        Assert.True(run.EndedByItself, run.ToString());
        Assert.Equal(2, run.Exit);
        Assert.Equal("", run.Output);
        Assert.True(run.ErrorLines.Length == 2, run.ToString());
        Assert.Contains(named, run.ErrorLines[0], StringComparison.Ordinal);
        Assert.Contains(hint, run.ErrorLines[1], StringComparison.Ordinal);
        // Told before anything is opened: the keys command has made no database in its data directory.
        Assert.Empty(Directory.EnumerateFileSystemEntries(run.WorkingDirectory));
    }

    [Fact]
    public void CheckConfig_OfAValidConfiguration_SaysSo_AndSummarisesIt_WithoutItsSecrets()
    {
        var run = runs.Result("check-config " + string.Join(' ', SecretSettings));

        Assert.True(run.EndedByItself, run.ToString());
        Assert.Equal(0, run.Exit);
        Assert.Equal("", run.Error);
        string[] lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("Configuration is valid.", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("gpu-a", StringComparison.Ordinal) && l.Contains("http://10.0.0.5:11434", StringComparison.Ordinal)
            && l.Contains("ollama", StringComparison.Ordinal) && l.Contains("2 slots", StringComparison.Ordinal)
            && l.Contains("llama3.1:8b, qwen2.5:7b", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("gpu-b", StringComparison.Ordinal) && l.Contains("http://10.0.0.6:8000", StringComparison.Ordinal)
            && l.Contains("openai", StringComparison.Ordinal) && l.Contains("16 slots", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Auth: keys", StringComparison.Ordinal));
        Assert.Contains("Storage: PostgreSQL, database 'anteroom' on db.internal", lines);
        Assert.Contains("Redis: on, redis.internal:6380, prefix 'anteroom'", lines);
        Assert.DoesNotContain("hunter2", run.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-redis", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckConfig_WithNothingConfigured_SaysTheBuiltInSimulatorWouldServe_InOpenMode_WithSqlite_AndNoRedis()
    {
        var run = runs.Result("check-config --Anteroom:Data:Directory=.");

        Assert.Equal(0, run.Exit);
        string[] lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("Configuration is valid.", lines[0]);
        Assert.Contains(lines, l => l.Contains("built-in simulator", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Auth: open", StringComparison.Ordinal));
        Assert.Contains($"Storage: SQLite in {run.WorkingDirectory}", lines);
        Assert.Contains("Redis: off", lines);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("check-config")]
    public void Configuration_IsReadFromTheWorkingDirectorysFile_TheEnvironment_AndTheArguments_LaterOnesWinning(string command)
    {
        var run = runs.Result(command + " with three sources");

        Assert.True(run.EndedByItself, run.ToString());
        Assert.Equal(1, run.Exit);
        // The file's policy and the environment's prefix are reported; the file's auth mode was overridden by an argument.
        Assert.Equal(3, run.ErrorLines.Length);
        Assert.StartsWith("- Anteroom:Queue:Policy must be 'fair' or 'fifo' (got 'lottery')", run.ErrorLines[1], StringComparison.Ordinal);
        Assert.StartsWith("- Anteroom:Redis:Prefix must be", run.ErrorLines[2], StringComparison.Ordinal);
    }

    public sealed class Runs : IAsyncLifetime
    {
        private const string File = """{ "Anteroom": { "Queue": { "Policy": "lottery" }, "Auth": { "Mode": "password" } } }""";

        private readonly string _directory = TestGateway.NewDataDirectory();
        private IReadOnlyDictionary<string, AnteroomRun> _results = new Dictionary<string, AnteroomRun>();

        public async Task InitializeAsync()
        {
            var plain = HelpRequests.Select(row => (string)row[0])
                .Concat(["--version", "frobnicate", "simulate --parallel 2 --colour blue", "keys create --user alice --colour blue", "keys list --all", "keys rotate", "keys revoke"])
                .Concat(["check-config --Anteroom:Data:Directory=.", "check-config " + string.Join(' ', SecretSettings)])
                .Select(arguments => (arguments, Split(arguments), (IReadOnlyDictionary<string, string>?)null, (string?)null));
            var sources = ((string[])["serve", "check-config"]).Select(command => (
                command + " with three sources",
                (string[])[command, "--urls", "http://127.0.0.1:0", "--Anteroom:Data:Directory=.", "--Anteroom:Auth:Mode=keys"],
                (IReadOnlyDictionary<string, string>?)new Dictionary<string, string> { ["Anteroom__Redis__Prefix"] = "two words" },
                (string?)File));
            _results = await AnteroomRun.StartAllAsync(_directory, plain.Concat(sources));
        }

        internal AnteroomRun Result(string arguments) => _results[arguments];

        public Task DisposeAsync()
        {
            Directory.Delete(_directory, recursive: true);
            return Task.CompletedTask;
        }

        /// <summary>
        /// The arguments, each run in its own directory that is also its data directory (the keys command's too),
        /// given after the command and its first word so no flag takes it for its value.
        /// </summary>
        private static string[] Split(string arguments)
        {
            string[] words = arguments.Split(' ');
            return words[0] == "keys" && words.Length > 1
                ? ["keys", words[1], "--Anteroom:Data:Directory=.", .. words[2..]]
                : words;
        }
    }
}
