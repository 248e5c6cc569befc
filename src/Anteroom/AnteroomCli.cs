using Anteroom.Gateway;
using Anteroom.Simulator;
using Microsoft.Extensions.Options;

namespace Anteroom;

/// <summary>The <c>anteroom</c> command line: <c>serve</c> (the default), <c>simulate</c> and <c>keys</c>.</summary>
internal static class AnteroomCli
{
    private const string Usage = """
        Usage:
          anteroom serve [--urls URL] [--Anteroom:Key=Value ...]   run the gateway (the default command)
          anteroom simulate [--urls URL] [--models a,b] [--parallel N] ...   run a simulated model server
          anteroom keys create --user NAME [--tier T] [--expires 30d] [--admin] [--can-act-for-users]
          anteroom keys list | anteroom keys revoke KEY_ID
          anteroom help

        The gateway reads the appsettings.json shipped beside it, then appsettings.json in the working directory,
        ANTEROOM__-style environment variables (e.g. Anteroom__Queue__Policy=fifo) and --Anteroom:Key=Value arguments.
        With no Anteroom:Backends configured it starts a simulator in-process.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        string verb = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "serve";
        string[] rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        switch (verb)
        {
            case "serve":
                return await ServeAsync(rest);
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
            case "help" or "--help" or "-h":
                Console.WriteLine(Usage);
                return 0;
            default:
                await Console.Error.WriteLineAsync($"Unknown command '{verb}'.\n\n{Usage}");
                return 2;
        }
    }

    private static async Task<int> ServeAsync(string[] args)
    {
        // Configuration is read once, at start. Watching it for changes watches the whole working directory, with
        // every file under it: a data directory there (or a home directory holding ~/.local/share/anteroom) woke
        // the watcher on every write the request log made.
        var builder = WebApplication.CreateBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);
        // The shipped appsettings.json (log levels) lies beside the binary, but the host reads appsettings.json from
        // the working directory, which under `dotnet run` or a service manager is anywhere. So the shipped file is
        // read first, beneath every other source: an operator's own appsettings.json, variables and arguments win.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            FileProvider = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(AppContext.BaseDirectory),
            Path = "appsettings.json",
            Optional = true,
        });
        builder.AddAnteroom();
        // Disposed when it has stopped: the stores then write what is still queued (the last requests' log entries)
        // before the process exits.
        await using var app = builder.Build();
        app.MapAnteroom();
        try
        {
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
            await Console.Error.WriteLineAsync("Anteroom cannot start; fix its configuration:");
            foreach (var failure in exception.Failures)
            {
                await Console.Error.WriteLineAsync("  - " + failure);
            }

            return 1;
        }
        catch (IOException exception) when (exception.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"Anteroom cannot start: {exception.Message} Choose another address with --urls, e.g. --urls http://127.0.0.1:8081");
            return 1;
        }
    }
}
