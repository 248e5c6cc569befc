using System.Globalization;
using Anteroom.Configuration;
using Anteroom.Storage;

namespace Anteroom.Identity;

/// <summary>
/// <c>anteroom keys create|list|revoke</c>: manages API keys in the same database the gateway uses, found through
/// the same configuration (appsettings.json, environment, <c>--Anteroom:Data:Directory=…</c> or
/// <c>--Anteroom:Storage:Postgres=…</c>). A running gateway
/// sees a change on its next request.
/// </summary>
internal static class KeysCommand
{
    public const string Usage = """
        Usage:
          anteroom keys create --user NAME [--tier TIER] [--expires 30d] [--admin] [--can-act-for-users]
          anteroom keys list
          anteroom keys revoke KEY_ID

        'create' prints the new key on standard output, once; only a salted hash of it is kept.
        --expires takes minutes, hours, days or weeks: 90m, 12h, 30d, 2w.
        --can-act-for-users lets an application name its end users ('user' field or X-Anteroom-User), each
        limited and queued apart.
        """;

    private static readonly string[] CreateFlags = ["user", "tier", "expires", "admin", "can-act-for-users"];

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        if (args is ["help", ..] || args.Any(arg => arg is "--help" or "-h"))
        {
            await output.WriteLineAsync(Usage);
            return 0;
        }

        var (flags, positional, settings) = Split(args.Length > 0 ? args[1..] : []);
        // Told before the store is opened, so a mistyped command leaves no database behind.
        if (Misuse(args.FirstOrDefault(), flags, positional) is { } misuse)
        {
            await error.WriteLineAsync($"anteroom keys: {misuse}");
            await error.WriteLineAsync("Run 'anteroom keys --help' for usage.");
            return 2;
        }

        var options = Configure(settings);
        IStore store;
        try
        {
            // The gateway's own store: the PostgreSQL database when one is configured, the data directory's file otherwise.
            store = string.IsNullOrWhiteSpace(options.Storage.Postgres)
                ? SqliteStore.Open(DataDirectory.DatabasePath(DataDirectory.Prepare(options.DataDirectory())), time)
                : await PostgresStore.OpenAsync(options.Storage.Postgres, time);
        }
        catch (StorageStartException exception)
        {
            await error.WriteLineAsync(exception.Message);
            return 1;
        }

        await using var _ = store;
        switch (args[0])
        {
            case "create":
                return await CreateAsync(store, options, flags, output, error, time);
            case "list":
                return await ListAsync(store, output, time);
            default:
                if (await store.RevokeKeyAsync(positional[0], time.GetUtcNow()))
                {
                    await output.WriteLineAsync($"Revoked key {positional[0]}.");
                    return 0;
                }

                await error.WriteLineAsync($"No unrevoked key '{positional[0]}' (see 'anteroom keys list').");
                return 1;
        }
    }

    /// <summary>What is wrong with the command line itself (an unknown command or flag, a missing value), or null.</summary>
    private static string? Misuse(string? command, Dictionary<string, string?> flags, List<string> positional)
    {
        string[] known = command == "create" ? CreateFlags : [];
        int arguments = command == "revoke" ? 1 : 0;
        return command switch
        {
            null => "which command? create, list or revoke.",
            not ("create" or "list" or "revoke") => $"unknown command '{command}'.",
            _ when flags.Keys.FirstOrDefault(flag => !known.Contains(flag)) is { } unknown => $"unknown flag '--{unknown}' for '{command}'.",
            _ when ((string[])["user", "tier"]).FirstOrDefault(name => flags.TryGetValue(name, out var value) && value is null) is { } bare =>
                $"--{bare} needs a value.",
            _ when positional.Count < arguments => "revoke needs the KEY_ID to revoke (see 'anteroom keys list').",
            _ when positional.Skip(arguments).FirstOrDefault() is { } extra => $"unexpected argument '{extra}'.",
            _ => null,
        };
    }

    private static async Task<int> CreateAsync(
        IKeyStore store, AnteroomOptions options, Dictionary<string, string?> flags, TextWriter output, TextWriter error, TimeProvider time)
    {
        TimeSpan? expiresIn = null;
        if (flags.TryGetValue("expires", out var expires))
        {
            if (expires is null || !KeyIssuer.TryParseExpiry(expires, out var parsed))
            {
                await error.WriteLineAsync($"--expires must be a duration such as 30d, 12h, 90m or 2w (got '{expires}').");
                return 2;
            }

            expiresIn = parsed;
        }

        var order = new KeyOrder(flags.GetValueOrDefault("user"), flags.GetValueOrDefault("tier"), expiresIn, flags.ContainsKey("admin"), flags.ContainsKey("can-act-for-users"));
        var (token, key, problem) = await new KeyIssuer(store, options, time).IssueAsync(order);
        if (token is null)
        {
            await error.WriteLineAsync(problem);
            return 1;
        }

        await error.WriteLineAsync(
            $"Created key {key!.Id} for user '{key.User}' (tier '{key.Tier}'{(key.Admin ? ", admin" : "")}{(key.CanActForUsers ? ", may act for users" : "")}" +
            $"{(key.ExpiresAt is { } at ? ", expires " + Format(at) : "")}). It is shown once; store it now:");
        await output.WriteLineAsync(token);
        return 0;
    }

    private static async Task<int> ListAsync(IKeyStore store, TextWriter output, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var keys = await store.ListKeysAsync();
        if (keys.Count == 0)
        {
            await output.WriteLineAsync("No keys yet; create one with 'anteroom keys create --user NAME'.");
            return 0;
        }

        await output.WriteLineAsync($"{"ID",-16}  {"USER",-20}  {"TIER",-12}  {"STATE",-8}  {"CREATED",-17}  {"EXPIRES",-17}  FLAGS");
        foreach (var key in keys)
        {
            string state = key.RevokedAt is not null ? "revoked" : key.ExpiresAt is { } e && e <= now ? "expired" : "active";
            string flags = string.Join(",", new[] { key.Admin ? "admin" : null, key.CanActForUsers ? "acts-for-users" : null }.OfType<string>());
            await output.WriteLineAsync(
                $"{key.Id,-16}  {key.User,-20}  {key.Tier,-12}  {state,-8}  {Format(key.CreatedAt),-17}  {(key.ExpiresAt is { } x ? Format(x) : "never"),-17}  {flags}");
        }

        return 0;
    }

    /// <summary>Separates <c>--flag value</c> options from <c>--Section:Key=value</c> configuration settings.</summary>
    private static (Dictionary<string, string?> Flags, List<string> Positional, List<string> Settings) Split(string[] args)
    {
        var flags = new Dictionary<string, string?>(StringComparer.Ordinal);
        var positional = new List<string>();
        var settings = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                positional.Add(arg);
            }
            else if (arg.Contains(':', StringComparison.Ordinal) || arg.Contains('=', StringComparison.Ordinal) || arg == "--urls")
            {
                settings.Add(arg);
                if (!arg.Contains('=', StringComparison.Ordinal) && i + 1 < args.Length)
                {
                    settings.Add(args[++i]);
                }
            }
            else
            {
                string name = arg[2..];
                bool takesValue = name is "user" or "tier" or "expires";
                // A value never starts with "--": a flag left without one must not swallow the next option.
                flags[name] = takesValue && i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            }
        }

        return (flags, positional, settings);
    }

    private static AnteroomOptions Configure(List<string> settings)
    {
        string environment = Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT") ?? Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT") ?? "Production";
        var configuration = new ConfigurationBuilder()
            .SetBasePath(Directory.GetCurrentDirectory())
            .AddJsonFile("appsettings.json", optional: true)
            .AddJsonFile($"appsettings.{environment}.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine([.. settings])
            .Build();
        var options = new AnteroomOptions();
        configuration.GetSection(AnteroomOptions.Section).Bind(options);
        return options;
    }

    private static string Format(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
}
