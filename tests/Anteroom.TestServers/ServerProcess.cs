using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Anteroom.TestServers;

/// <summary>
/// A server program run for the tests: started with its output read line by line, ready when it prints the line
/// it prints once it accepts connections, and killed when disposed. Nothing is polled and nothing sleeps: readiness
/// is that printed line, and a program that exits first fails the start with what it printed.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyLine;

    private ServerProcess(ProcessStartInfo start, string readyLine)
    {
        _readyLine = readyLine;
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => Seen(e.Data);
        _process.ErrorDataReceived += (_, e) => Seen(e.Data);
        _process.Exited += (_, _) => _ready.TrySetException(new InvalidOperationException(
            $"{Path.GetFileName(start.FileName)} exited with {_process.ExitCode} before it was ready:\n{Output}"));
    }

    /// <summary>The line that said the program was ready.</summary>
    public string ReadyLine { get; private set; } = "";

    /// <summary>The program's process id.</summary>
    public int Id => _process.Id;

    /// <summary>What the program printed so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    /// <summary>Starts <paramref name="program"/> and completes once it prints a line containing <paramref name="readyLine"/>.</summary>
    public static async Task<ServerProcess> StartAsync(
        string program, IEnumerable<string> arguments, string readyLine, string? runAs = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var server = new ServerProcess(StartInfo(program, arguments, runAs, environment), readyLine);
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        try
        {
            server.ReadyLine = await server._ready.Task.WaitAsync(StartTimeout);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>Runs a program to its end; throws with its output when it fails.</summary>
    public static async Task RunAsync(string program, IEnumerable<string> arguments, string? runAs = null)
    {
        var start = StartInfo(program, arguments, runAs, null);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(StartTimeout);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} exited with {process.ExitCode}:\n{await output}\n{await errors}");
        }
    }

    /// <summary>
    /// Asks the program to stop, as a service manager does (<c>SIGTERM</c>), and returns its exit code once it has
    /// exited; throws <see cref="TimeoutException"/> when it is still running after <paramref name="timeout"/>.
    /// </summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        await RunAsync("kill", ["-TERM", Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    /// <summary>Kills the program at once, as <c>kill -9</c> does, and waits for it to be gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
            // It never started.
        }

        _process.Dispose();
    }

    /// <summary>A loopback port free at the moment of asking.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The program's full path: found on the PATH or in one of <paramref name="places"/> (globs allowed in the last part).</summary>
    public static string Find(string program, string installHint, params string[] places)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        foreach (string place in places)
        {
            string? parent = Path.GetDirectoryName(place);
            if (parent is null || !Directory.Exists(Path.GetDirectoryName(parent) ?? parent))
            {
                continue;
            }

            var found = Directory.Exists(parent)
                ? [Path.Combine(parent, Path.GetFileName(place))]
                : Directory.GetDirectories(Path.GetDirectoryName(parent)!, Path.GetFileName(parent))
                    .OrderByDescending(d => d, StringComparer.Ordinal)
                    .Select(d => Path.Combine(d, Path.GetFileName(place)));
            if (found.FirstOrDefault(File.Exists) is { } path)
            {
                return path;
            }
        }

        throw new InvalidOperationException($"{program} is not installed; {installHint} (./test.sh installs it).");
    }

    /// <summary>
    /// The user to run a server as that refuses to run as root (PostgreSQL): null when the tests do not run as root;
    /// otherwise the <c>postgres</c> user if there is one, else <c>nobody</c>.
    /// </summary>
    public static string? UnprivilegedUser()
    {
        if (Environment.UserName != "root")
        {
            return null;
        }

        return File.ReadLines("/etc/passwd").Any(line => line.StartsWith("postgres:", StringComparison.Ordinal)) ? "postgres" : "nobody";
    }

    /// <summary>Hands a directory (and what is in it) to <paramref name="user"/>, when there is one.</summary>
    public static Task GiveAsync(string directory, string? user) =>
        user is null ? Task.CompletedTask : RunAsync("chown", ["-R", user, directory]);

    private void Seen(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Add(line);
        }

        if (line.Contains(_readyLine, StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
    }

    private static ProcessStartInfo StartInfo(string program, IEnumerable<string> arguments, string? runAs, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo
        {
            FileName = runAs is null ? program : "runuser",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (runAs is not null)
        {
            foreach (string part in (string[])["-u", runAs, "--", program])
            {
                start.ArgumentList.Add(part);
            }
        }

        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return start;
    }
}
