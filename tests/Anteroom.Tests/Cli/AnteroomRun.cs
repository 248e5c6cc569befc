using System.Diagnostics;

namespace Anteroom.Tests.Cli;

/// <summary>What one run of the built <c>anteroom</c> command printed, and how it ended.</summary>
/// <param name="Exit">Its exit code; -1 when it had to be killed.</param>
/// <param name="EndedByItself">False when it was still running at the deadline (a server that started, say) and was killed.</param>
/// <param name="WorkingDirectory">Where it ran; the tests give each run its own, used as its data directory too.</param>
internal sealed record AnteroomRun(int Exit, string Output, string Error, bool EndedByItself, string WorkingDirectory)
{
    /// <summary>Long enough for a cold start on a busy machine; a command that serves instead of ending runs into it.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    /// <summary>The lines written to standard error, without blank ones.</summary>
    public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Runs <c>dotnet anteroom.dll</c> with <paramref name="arguments"/> as an operator does, in
    /// <paramref name="workingDirectory"/> and with <paramref name="environment"/> added to this process's own, and
    /// waits for it to end by itself (or kills it at the deadline).
    /// </summary>
    public static async Task<AnteroomRun> StartAsync(
        IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "anteroom.dll"));
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // The gateway reads Anteroom__* variables; ones set around the test run must not change what it is given.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("Anteroom__", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        bool endedByItself = true;
        try
        {
            await process.WaitForExitAsync().WaitAsync(Deadline);
        }
        catch (TimeoutException)
        {
            endedByItself = false;
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        return new AnteroomRun(endedByItself ? process.ExitCode : -1, await output, await error, endedByItself, workingDirectory);
    }

    /// <summary>
    /// Runs every one of <paramref name="runs"/>, a few at once: each is a .NET start of about a second, and the
    /// machine's cores are shared. Each gets its own new directory under <paramref name="root"/> to run in.
    /// </summary>
    public static async Task<IReadOnlyDictionary<TKey, AnteroomRun>> StartAllAsync<TKey>(
        string root, IEnumerable<(TKey Key, string[] Arguments, IReadOnlyDictionary<string, string>? Environment, string? Settings)> runs)
        where TKey : notnull
    {
        var results = new System.Collections.Concurrent.ConcurrentDictionary<TKey, AnteroomRun>();
        await Parallel.ForEachAsync(runs, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (run, _) =>
        {
            string directory = Directory.CreateDirectory(Path.Combine(root, Guid.NewGuid().ToString("N"))).FullName;
            if (run.Settings is not null)
            {
                await File.WriteAllTextAsync(Path.Combine(directory, "appsettings.json"), run.Settings, CancellationToken.None);
            }

            results[run.Key] = await StartAsync(run.Arguments, directory, run.Environment);
        });
        return results;
    }

    /// <summary>Everything it printed, for a failing assertion's message.</summary>
    public override string ToString() => $"exit {Exit}{(EndedByItself ? "" : " (killed: still running)")}\n--- stdout ---\n{Output}\n--- stderr ---\n{Error}";
}
