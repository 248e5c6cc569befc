using System.Reflection;
using Anteroom.Configuration;
using Anteroom.Gateway;
using Anteroom.Simulator;
using Microsoft.Extensions.Options;

namespace Anteroom;

/// <summary>
/// The <c>anteroom</c> command line: <c>serve</c> (the default), <c>check-config</c>, <c>simulate</c> and <c>keys</c>,
/// with <c>--help</c> on each and <c>--version</c>. Exit codes: 0 done, 1 it could not (a configuration to fix, an
/// address in use), 2 the command line itself is wrong.
/// </summary>
internal static class AnteroomCli
{
    private const string Usage = """
        Usage: anteroom [command] [options]

        Commands:
          serve          run the gateway (the default: 'anteroom --urls URL' is 'anteroom serve --urls URL')
          check-config   validate the configuration serve would use, print a summary and exit
          simulate       run a simulated model server, for demos and load tests
          keys           create, list or revoke API keys
          help [command] show this help, or a command's

        Options:
          --help, -h     show help ('anteroom COMMAND --help' shows a command's)
          --version      print the version and exit

        The gateway reads the appsettings.json shipped beside it, then appsettings.json in the working directory,
        Anteroom__-style environment variables (e.g. Anteroom__Queue__Policy=fifo) and --Anteroom:Key=Value arguments.
        With no Anteroom:Backends configured it starts a simulator in-process.
        """;

    private const string ServeUsage = """
        Usage: anteroom serve [--urls URL[;URL]] [--Anteroom:Key=Value ...]

        Runs the gateway until Ctrl-C or SIGTERM. 'serve' is the default command: 'anteroom --urls URL' is the same.
          --urls URL[;URL]        where to listen (default http://127.0.0.1:8080)
          --Anteroom:Key=Value    any configuration key, e.g. --Anteroom:Queue:Policy=fifo (see README.md)

        Configuration is read from the appsettings.json shipped beside the binary, then appsettings.json in the
        working directory, Anteroom__-style environment variables (Anteroom__Queue__Policy=fifo) and the arguments,
        each over the ones before. With no Anteroom:Backends configured it starts a simulated model server in-process.
        A configuration that is not valid stops it before it listens, with one line per key to fix and exit code 1;
        'anteroom check-config' checks one without starting.
        """;

    private static readonly string[] HelpFlags = ["--help", "-h"];

    public static async Task<int> RunAsync(string[] args)
    {
        // No command, or a first argument that is an option, is `serve`: `anteroom --urls …` as before.
        string verb = args.Length > 0 && (!args[0].StartsWith('-') || args[0] is "--help" or "-h" or "--version") ? args[0] : "serve";
        string[] rest = args.Length > 0 && verb == args[0] ? args[1..] : args;
        switch (verb)
        {
            case "--help" or "-h" or "help":
                return await HelpAsync(rest);
            case "--version":
                Console.WriteLine(Version);
                return 0;
            case "serve" or "check-config" when rest.Any(HelpFlags.Contains):
                return await HelpAsync([verb]);
            case "serve":
                return await ServeAsync(rest);
            case "check-config":
                return await CheckConfigAsync(rest);
            case "simulate":
                using (var stop = new CancellationTokenSource())
                {
                    Console.CancelKeyPress += (_, e) =>
                    {
                        e.Cancel = true;
                        stop.Cancel();
                    };
                    return await SimulatorCommand.RunAsync(rest, stop.Token);
                }

            case "keys":
                return await Identity.KeysCommand.RunAsync(rest, Console.Out, Console.Error);
            default:
                await Console.Error.WriteLineAsync($"anteroom: unknown command '{verb}'.");
                await Console.Error.WriteLineAsync("Run 'anteroom --help' to see the commands.");
                return 2;
        }
    }

    /// <summary>The version the build stamped, e.g. <c>1.0.0+0123abc</c> (with the commit it was built from).</summary>
    private static string Version =>
        typeof(AnteroomCli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary><c>anteroom help [command]</c>: the general help, or that command's.</summary>
    private static async Task<int> HelpAsync(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case null or "--help" or "-h" or "help":
                await Console.Out.WriteLineAsync(Usage);
                return 0;
            case "serve":
                await Console.Out.WriteLineAsync(ServeUsage);
                return 0;
            case "check-config":
                await Console.Out.WriteLineAsync(CheckConfigCommand.Usage);
                return 0;
            case "simulate":
                return await SimulatorCommand.RunAsync(["--help"]);
            case "keys":
                return await Identity.KeysCommand.RunAsync(["--help"], Console.Out, Console.Error);
            case var other:
                await Console.Error.WriteLineAsync($"anteroom help: unknown command '{other}'.");
                await Console.Error.WriteLineAsync("Run 'anteroom --help' to see the commands.");
                return 2;
        }
    }

    /// <summary>
    /// The host builder of <c>serve</c>, with all its configuration sources, and the embedded simulator configured
    /// when no backend is. <c>check-config</c> uses it too, so it judges exactly what <c>serve</c> would run with.
    /// Null, said under <paramref name="heading"/>, when a configuration file cannot be read.
    /// </summary>
    private static async Task<WebApplicationBuilder?> CreateBuilderAsync(string[] args, string heading)
    {
        // Configuration is read once, at start. Watching it for changes watches the whole working directory, with
        // every file under it: a data directory there (or a home directory holding ~/.local/share/anteroom) woke
        // the watcher on every write the request log made.
        WebApplicationBuilder builder;
        try
        {
            builder = WebApplication.CreateBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);
            // The shipped appsettings.json (log levels) lies beside the binary, but the host reads appsettings.json
            // from the working directory, which under `dotnet run` or a service manager is anywhere. So the shipped
            // file is read first, beneath every other source: an operator's own appsettings.json, variables and
            // arguments win.
            builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
            {
                FileProvider = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(AppContext.BaseDirectory),
                Path = "appsettings.json",
                Optional = true,
            });
        }
        catch (InvalidDataException exception)
        {
            // A file that is not JSON: which file, and where in it (the innermost message has the line).
            string where = exception.GetBaseException() is { } cause && cause != exception ? " " + cause.Message : "";
            await CheckConfigCommand.WriteProblemsAsync(Console.Error, heading, [exception.Message + where]);
            return null;
        }

        builder.AddEmbeddedSimulatorWithoutBackends();
        return builder;
    }

    private static async Task<int> CheckConfigAsync(string[] args)
    {
        if (await CreateBuilderAsync(args, CheckConfigCommand.Invalid) is not { } builder)
        {
            return 1;
        }

        bool simulated = builder.Services.Any(service => service.ServiceType == typeof(EmbeddedSimulator));
        return await CheckConfigCommand.RunAsync(builder.Configuration, simulated, Console.Out, Console.Error);
    }

    private static async Task<int> ServeAsync(string[] args)
    {
        const string invalid = "Anteroom cannot start; fix its configuration:";
        if (await CreateBuilderAsync(args, invalid) is not { } builder)
        {
            return 1;
        }

        // Checked before anything is built or opened: a value of the wrong type would otherwise surface as the
        // binder's exception from deep inside the composition, and a failed validation only once the host starts.
        if (ConfigurationCheck.Check(builder.Configuration).Problems is { Count: > 0 } problems)
        {
            await CheckConfigCommand.WriteProblemsAsync(Console.Error, invalid, problems);
            return 1;
        }

        builder.AddAnteroom();
        // Disposed when it has stopped: the stores then write what is still queued (the last requests' log entries)
        // before the process exits.
        await using var app = builder.Build();
        try
        {
            app.MapAnteroom();
            // Opened before the host starts, so a database that cannot be used is one clear line, not a host failure.
            app.Services.GetRequiredService<Storage.IRequestLog>();
            await app.RunAsync();
            return 0;
        }
        catch (Storage.StorageStartException exception)
        {
            await Console.Error.WriteLineAsync($"Anteroom cannot start: {exception.Message}");
            return 1;
        }
        catch (OptionsValidationException exception)
        {
            await CheckConfigCommand.WriteProblemsAsync(Console.Error, invalid, exception.Failures);
            return 1;
        }
        catch (IOException exception) when (exception.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"Anteroom cannot start: {exception.Message} Choose another address with --urls, e.g. --urls http://127.0.0.1:8081");
            return 1;
        }
    }
}
