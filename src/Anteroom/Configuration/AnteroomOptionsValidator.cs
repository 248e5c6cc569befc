using Microsoft.Extensions.Options;

namespace Anteroom.Configuration;

/// <summary>Checks the configuration at start-up and says, key by key, what to fix.</summary>
internal sealed class AnteroomOptionsValidator : IValidateOptions<AnteroomOptions>
{
    public ValidateOptionsResult Validate(string? name, AnteroomOptions options)
    {
        var problems = Problems(options).ToList();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    internal static IEnumerable<string> Problems(AnteroomOptions options)
    {
        const string root = AnteroomOptions.Section;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < options.Backends.Count; i++)
        {
            var backend = options.Backends[i];
            string key = $"{root}:Backends:{i}";
            if (string.IsNullOrWhiteSpace(backend.Name))
            {
                yield return $"{key}:Name is required (a unique name such as 'gpu-a').";
            }
            else if (!names.Add(backend.Name))
            {
                yield return $"{key}:Name '{backend.Name}' is used by another backend; names must be unique.";
            }

            if (!Uri.TryCreate(backend.Url, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            {
                yield return $"{key}:Url must be an absolute http or https URL such as 'http://127.0.0.1:11434' (got '{backend.Url}').";
            }

            if (!string.Equals(backend.Protocol, "ollama", StringComparison.OrdinalIgnoreCase) &&
                !string.Equals(backend.Protocol, "openai", StringComparison.OrdinalIgnoreCase))
            {
                yield return $"{key}:Protocol must be 'ollama' or 'openai' (got '{backend.Protocol}').";
            }

            if (backend.Slots < 1)
            {
                yield return $"{key}:Slots must be at least 1 (got {backend.Slots}).";
            }

            if (backend.Models.Count == 0 || backend.Models.Any(string.IsNullOrWhiteSpace))
            {
                yield return $"{key}:Models must list at least one model name, e.g. {key}:Models:0=llama3.1:8b.";
            }
        }

        var queue = options.Queue;
        if (!string.Equals(queue.Policy, "fair", StringComparison.OrdinalIgnoreCase) &&
            !string.Equals(queue.Policy, "fifo", StringComparison.OrdinalIgnoreCase))
        {
            yield return $"{root}:Queue:Policy must be 'fair' or 'fifo' (got '{queue.Policy}').";
        }

        if (queue.MaxQueueLength < 0)
        {
            yield return $"{root}:Queue:MaxQueueLength must be zero or more (got {queue.MaxQueueLength}).";
        }

        if (queue.MaxWaitingPerUser < 1)
        {
            yield return $"{root}:Queue:MaxWaitingPerUser must be at least 1 (got {queue.MaxWaitingPerUser}).";
        }

        if (queue.MaxInFlightPerUser < 1)
        {
            yield return $"{root}:Queue:MaxInFlightPerUser must be at least 1 (got {queue.MaxInFlightPerUser}).";
        }

        if (!(queue.MaxWaitSeconds > 0))
        {
            yield return $"{root}:Queue:MaxWaitSeconds must be positive (got {queue.MaxWaitSeconds}).";
        }

        if (queue.MaxDispatchAttempts < 1)
        {
            yield return $"{root}:Queue:MaxDispatchAttempts must be at least 1 (got {queue.MaxDispatchAttempts}).";
        }

        if (queue.PositionUpdateMilliseconds < 0)
        {
            yield return $"{root}:Queue:PositionUpdateMilliseconds must be zero or more (got {queue.PositionUpdateMilliseconds}).";
        }

        if (queue.MaxOutputTokens < 1)
        {
            yield return $"{root}:Queue:MaxOutputTokens must be at least 1 (got {queue.MaxOutputTokens}).";
        }

        if (!(options.Stream.KeepAliveSeconds > 0))
        {
            yield return $"{root}:Stream:KeepAliveSeconds must be positive (got {options.Stream.KeepAliveSeconds}).";
        }

        if (options.Stream.MaxReconnectGraceSeconds < 0 || options.Stream.RetainSeconds < 0)
        {
            yield return $"{root}:Stream:MaxReconnectGraceSeconds and RetainSeconds must not be negative.";
        }

        if (!(options.Health.ProbeSeconds > 0) || !(options.Health.IdleTimeoutSeconds > 0) || options.Health.FailuresBeforeUnhealthy < 1)
        {
            yield return $"{root}:Health:ProbeSeconds and IdleTimeoutSeconds must be positive and FailuresBeforeUnhealthy at least 1.";
        }

        var health = options.Health;
        if (!(health.WindowSeconds > 0) || !(health.CooldownSeconds > 0) || health.MinimumRequests < 1 ||
            !(health.FailureRatePercent > 0 && health.FailureRatePercent <= 100))
        {
            yield return $"{root}:Health:WindowSeconds and CooldownSeconds must be positive, MinimumRequests at least 1 and FailureRatePercent above 0 and at most 100 " +
                $"(got {health.WindowSeconds}, {health.CooldownSeconds}, {health.MinimumRequests}, {health.FailureRatePercent}).";
        }

        if (options.Stream.MaxAnswerBytes < 64 * 1024)
        {
            yield return $"{root}:Stream:MaxAnswerBytes must be at least 65536 (got {options.Stream.MaxAnswerBytes}).";
        }

        if (options.Stream.MaxBufferedBytes < 64 * 1024)
        {
            yield return $"{root}:Stream:MaxBufferedBytes must be at least 65536 (got {options.Stream.MaxBufferedBytes}).";
        }

        var estimates = options.Estimates;
        if (estimates.TimeToFirstTokenMs < 0 || !(estimates.TokensPerSecond > 0) || !(estimates.OutputTokens > 0))
        {
            yield return $"{root}:Estimates needs TimeToFirstTokenMs of zero or more and positive TokensPerSecond and OutputTokens.";
        }

        if (options.DefaultModel is { } model && options.Backends.Count > 0 && !options.Backends.Any(b => b.Models.Contains(model)))
        {
            yield return $"{root}:DefaultModel '{model}' is not served by any configured backend.";
        }

        foreach (var problem in RedisProblems(options.Redis))
        {
            yield return problem;
        }

        if (!(options.Shutdown.DrainSeconds >= 0 && options.Shutdown.DrainSeconds <= 3600))
        {
            yield return $"{root}:Shutdown:DrainSeconds must be between 0 and 3600 (got {options.Shutdown.DrainSeconds}).";
        }

        foreach (var problem in AccessProblems(options))
        {
            yield return problem;
        }
    }

    private static IEnumerable<string> RedisProblems(RedisOptions redis)
    {
        const string key = AnteroomOptions.Section + ":Redis";
        if (redis.Enabled)
        {
            string? problem = null;
            try
            {
                var parsed = StackExchange.Redis.ConfigurationOptions.Parse(redis.Configuration!);
                if (parsed.EndPoints.Count == 0)
                {
                    problem = "names no server";
                }
            }
            catch (ArgumentException exception)
            {
                problem = exception.Message;
            }

            if (problem is not null)
            {
                yield return $"{key}:Configuration must be a StackExchange.Redis configuration string such as '127.0.0.1:6379' ({problem}).";
            }
        }

        if (redis.Prefix.Length is 0 or > 64 || !redis.Prefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
        {
            yield return $"{key}:Prefix must be 1 to 64 letters, digits, '-', '_', '.' or ':' (got '{redis.Prefix}').";
        }

        if (!(redis.LeaseSeconds >= 2 && redis.LeaseSeconds <= 600))
        {
            yield return $"{key}:LeaseSeconds must be between 2 and 600 (got {redis.LeaseSeconds}): a replica renews its leases three times per lease.";
        }
    }

    private static IEnumerable<string> AccessProblems(AnteroomOptions options)
    {
        const string root = AnteroomOptions.Section;
        if (!string.Equals(options.Auth.Mode, "open", StringComparison.OrdinalIgnoreCase) && !options.Auth.RequiresKeys())
        {
            yield return $"{root}:Auth:Mode must be 'open' or 'keys' (got '{options.Auth.Mode}').";
        }

        if (options.FindTier(options.Auth.DefaultTier) is null)
        {
            yield return $"{root}:Auth:DefaultTier '{options.Auth.DefaultTier}' is not a configured tier ({root}:Tiers:{options.Auth.DefaultTier}).";
        }

        if (options.Auth.MaxSessionsPerAddress < 1)
        {
            yield return $"{root}:Auth:MaxSessionsPerAddress must be at least 1 (got {options.Auth.MaxSessionsPerAddress}).";
        }

        var served = options.Backends.SelectMany(b => b.Models).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, tier) in options.Tiers)
        {
            string key = $"{root}:Tiers:{name}";
            if (!(tier.Weight > 0) || double.IsInfinity(tier.Weight))
            {
                yield return $"{key}:Weight must be a positive number (got {tier.Weight}).";
            }

            if (tier.MaxInFlight is < 1 || tier.MaxWaiting is < 1 || tier.RequestsPerMinute is < 1 ||
                tier.TokensPerMinute is < 1 || tier.MaxOutputTokens is < 1)
            {
                yield return $"{key}: MaxInFlight, MaxWaiting, RequestsPerMinute, TokensPerMinute and MaxOutputTokens must be at least 1 when set.";
            }

            foreach (var model in tier.Models.Where(m => served.Count > 0 && !served.Contains(m)))
            {
                yield return $"{key}:Models names '{model}', which no configured backend serves.";
            }
        }

        var conversations = options.Conversations;
        if (conversations.MaxHistoryMessages < 0 || conversations.MaxHistoryTokens < 0)
        {
            yield return $"{root}:Conversations:MaxHistoryMessages and MaxHistoryTokens must not be negative.";
        }

        foreach (var origin in options.Cors.Origins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.AbsolutePath != "/" || origin.EndsWith('/'))
            {
                yield return $"{root}:Cors:Origins entry '{origin}' must be an origin such as 'https://app.example.com' (scheme, host, optional port; no path).";
            }
        }

        if (options.Data.RequestLogRetainDays < 1 || options.Data.MaxRefusalsLoggedPerUserPerMinute < 0)
        {
            yield return $"{root}:Data:RequestLogRetainDays must be at least 1 and MaxRefusalsLoggedPerUserPerMinute zero or more.";
        }

        if (conversations.RetainDays is < 1)
        {
            yield return $"{root}:Conversations:RetainDays must be at least 1 when set (got {conversations.RetainDays}); leave it unset to keep conversations.";
        }

        if (PostgresProblem(options.Storage.Postgres) is { } postgresProblem)
        {
            yield return $"{root}:Storage:Postgres {postgresProblem}";
        }

        if (options.Auth.KeyCacheMilliseconds is < 0 or > 60_000)
        {
            yield return $"{root}:Auth:KeyCacheMilliseconds must be from 0 to 60000 (got {options.Auth.KeyCacheMilliseconds}).";
        }

        if (options.MaxConnections is < 1)
        {
            yield return $"{root}:MaxConnections must be at least 1 when set (got {options.MaxConnections}).";
        }

        foreach (var host in options.AllowedHosts)
        {
            string name = host?.Trim() ?? "";
            string bare = name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name;
            if (name != "*" && Uri.CheckHostName(bare.Trim('[', ']')) == UriHostNameType.Unknown)
            {
                yield return $"{root}:AllowedHosts entry '{host}' must be a host name such as 'llm.example.com' or '*.example.com' (no scheme or port), or '*' for any.";
            }
        }

        if (options.MaxRequestBodyBytes < 1024)
        {
            yield return $"{root}:MaxRequestBodyBytes must be at least 1024 (got {options.MaxRequestBodyBytes}).";
        }
    }

    /// <summary>What is wrong with the PostgreSQL connection string, if it is set; whether the server answers is found at start.</summary>
    private static string? PostgresProblem(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            return null;
        }

        try
        {
            var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
            return string.IsNullOrWhiteSpace(builder.Host)
                ? "must name the server, e.g. 'Host=127.0.0.1;Database=anteroom;Username=anteroom;Password=…'."
                : null;
        }
        catch (ArgumentException exception)
        {
            // The message names the offending keyword, never the value (which may be a password).
            return $"is not a valid PostgreSQL connection string: {exception.Message}";
        }
    }
}
