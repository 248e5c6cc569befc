using System.Globalization;
using Anteroom.Gateway;

namespace Anteroom.Configuration;

/// <summary>
/// <c>anteroom check-config</c>: checks the configuration <c>serve</c> would run with and says what it describes,
/// without starting anything or contacting any server. What it prints never holds a password: the database and
/// Redis are named by their servers only.
/// </summary>
internal static class CheckConfigCommand
{
    public const string Usage = """
        Usage: anteroom check-config [--urls URL] [--Anteroom:Key=Value ...]

        Reads the configuration exactly as 'anteroom serve' does (the appsettings.json beside the binary, then
        appsettings.json in the working directory, Anteroom__-style environment variables, then the arguments given
        here), validates it, and exits without starting the gateway or contacting a backend, database or Redis.

        Valid: prints "Configuration is valid." and a summary (backends, auth, storage, Redis), exit code 0.
        Not valid: prints one line per key to fix on standard error, exit code 1.
        """;

    /// <summary>The heading of its problems.</summary>
    public const string Invalid = "Configuration is not valid; fix:";

    /// <param name="configuration">The configuration as <c>serve</c> builds it, the embedded simulator included when no backend is configured.</param>
    /// <param name="simulated">Whether no backend was configured, so the embedded simulator is the only one.</param>
    /// <param name="output">Where the summary goes.</param>
    /// <param name="error">Where the problems go.</param>
    public static async Task<int> RunAsync(IConfiguration configuration, bool simulated, TextWriter output, TextWriter error)
    {
        var (options, problems) = ConfigurationCheck.Check(configuration);
        if (problems.Count > 0)
        {
            await WriteProblemsAsync(error, Invalid, problems);
            return 1;
        }

        await output.WriteLineAsync("Configuration is valid.");
        string urls = configuration["urls"] is { Length: > 0 } configured ? configured : GatewayComposition.DefaultUrl;
        await output.WriteLineAsync($"Listens on: {urls}");
        await output.WriteLineAsync(simulated
            ? "Backends: none configured; serve starts the built-in simulator (not a real model):"
            : "Backends:");
        foreach (var backend in options.Backends)
        {
            string slots = backend.Slots == 1 ? "1 slot" : $"{backend.Slots.ToString(CultureInfo.InvariantCulture)} slots";
            // The simulator's port is picked afresh at each start; the one reserved here says nothing.
            string url = simulated ? "(in-process, on a free loopback port)" : backend.Url!;
            await output.WriteLineAsync($"  {backend.Name}  {url}  {backend.Protocol.ToLowerInvariant()}, {slots}, models {string.Join(", ", backend.Models)}");
        }

        await output.WriteLineAsync(options.Auth.RequiresKeys()
            ? "Auth: keys (every API call needs a key)"
            : $"Auth: open (callers without a key get tier '{options.Auth.DefaultTier}')");
        if (options.Tiers.Count > 0)
        {
            await output.WriteLineAsync($"Tiers: {string.Join(", ", options.Tiers.Keys.Order(StringComparer.Ordinal))}");
        }

        await output.WriteLineAsync($"Storage: {Storage(options)}");
        await output.WriteLineAsync($"Redis: {Redis(options.Redis)}");
        return 0;
    }

    /// <summary>Writes <paramref name="heading"/>, then each problem on a line of its own.</summary>
    public static async Task WriteProblemsAsync(TextWriter error, string heading, IEnumerable<string> problems)
    {
        await error.WriteLineAsync(heading);
        foreach (string problem in problems)
        {
            await error.WriteLineAsync("  - " + problem);
        }
    }

    private static string Storage(AnteroomOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.Storage.Postgres))
        {
            return $"SQLite in {options.DataDirectory()}";
        }

        // Valid by now (the validator parsed it); only where it is, never the password.
        var connection = new Npgsql.NpgsqlConnectionStringBuilder(options.Storage.Postgres);
        return connection.Database is { Length: > 0 } database ? $"PostgreSQL, database '{database}' on {connection.Host}" : $"PostgreSQL on {connection.Host}";
    }

    private static string Redis(RedisOptions redis)
    {
        if (!redis.Enabled)
        {
            return "off";
        }

        // Only the servers: the configuration string may hold a password.
        var servers = StackExchange.Redis.ConfigurationOptions.Parse(redis.Configuration!).EndPoints.Select(Server);
        return $"on, {string.Join(", ", servers)}, prefix '{redis.Prefix}'";
    }

    private static string Server(System.Net.EndPoint endPoint) => endPoint switch
    {
        System.Net.DnsEndPoint { Port: 0 } named => named.Host,
        System.Net.DnsEndPoint named => $"{named.Host}:{named.Port.ToString(CultureInfo.InvariantCulture)}",
        _ => endPoint.ToString() ?? "",
    };
}
