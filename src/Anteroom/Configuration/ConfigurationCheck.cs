using System.Text.RegularExpressions;

namespace Anteroom.Configuration;

/// <summary>
/// Binds the <c>Anteroom</c> section and validates it, as the gateway does at start, turning every problem into one
/// line that names its key: values that are not of their key's type (which the binder throws for) as well as the
/// validator's findings. Both <c>serve</c> and <c>check-config</c> ask it before anything starts.
/// </summary>
internal static partial class ConfigurationCheck
{
    /// <summary>More values of the wrong type than this are not all named: it is the wrong file, not a typo.</summary>
    private const int MaxBindingProblems = 50;

    /// <summary>The options as bound (a value of the wrong type left at its default), and what is wrong, one line per key.</summary>
    public static (AnteroomOptions Options, IReadOnlyList<string> Problems) Check(IConfiguration configuration)
    {
        var problems = new List<string>();
        // The binder stops at the first value it cannot convert. Each such key is named and then left out of the
        // next try (so it keeps its default), until all bind: one run names them all.
        var unconvertible = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var view = configuration;
        while (true)
        {
            var options = new AnteroomOptions();
            if (Bind(view, options) is not { } problem)
            {
                problems.AddRange(AnteroomOptionsValidator.Problems(options));
                problems.AddRange(LogLevelProblems(configuration));
                return (options, problems);
            }

            problems.Add(problem.Line);
            if (!unconvertible.Add(problem.Key) || unconvertible.Count >= MaxBindingProblems)
            {
                return (options, problems);
            }

            view = new ConfigurationBuilder()
                .AddInMemoryCollection(configuration.AsEnumerable().Where(setting => !unconvertible.Contains(setting.Key)))
                .Build();
        }
    }

    /// <summary>Binds <paramref name="options"/>; the first value that cannot be converted, if there is one.</summary>
    private static (string Key, string Line)? Bind(IConfiguration configuration, AnteroomOptions options)
    {
        var section = configuration.GetSection(AnteroomOptions.Section);
        try
        {
            section.Bind(options);
            // A list or dictionary element with a value that cannot be converted is left out without a word (a
            // backend with Slots=abc would vanish, and the next one take its index): bound on its own, it throws.
            foreach (var backend in section.GetSection(nameof(AnteroomOptions.Backends)).GetChildren())
            {
                backend.Bind(new BackendOptions());
            }

            foreach (var tier in section.GetSection(nameof(AnteroomOptions.Tiers)).GetChildren())
            {
                tier.Bind(new TierOptions());
            }

            return null;
        }
        catch (InvalidOperationException exception) when (BindingProblem(exception) is { } problem)
        {
            return problem;
        }
    }

    /// <summary>
    /// Log levels (<c>Logging:LogLevel:Default</c>, <c>Logging:Console:LogLevel:…</c>) that are no level: the host
    /// would throw for them as it is built, naming the value but not the key.
    /// </summary>
    private static IEnumerable<string> LogLevelProblems(IConfiguration configuration)
    {
        foreach (var (key, value) in configuration.GetSection("Logging").AsEnumerable())
        {
            string[] path = key.Split(':');
            if (!string.IsNullOrEmpty(value) && path.Length >= 3 && string.Equals(path[^2], "LogLevel", StringComparison.OrdinalIgnoreCase) &&
                !Enum.TryParse<LogLevel>(value, ignoreCase: true, out _))
            {
                yield return $"{key} must be a log level: Trace, Debug, Information, Warning, Error, Critical or None (got '{value}').";
            }
        }
    }

    /// <summary>
    /// The key and a one-line message for the configuration binder's failure to convert a value, or null when
    /// <paramref name="exception"/> is something else.
    /// </summary>
    private static (string Key, string Line)? BindingProblem(InvalidOperationException exception)
    {
        // The binder's own message is the only place that names the key: "Failed to convert configuration value 'abc'
        // at 'Anteroom:Queue:MaxWaitSeconds' to type 'System.Double'."
        var match = FailedConversion().Match(exception.Message);
        if (!match.Success)
        {
            return null;
        }

        string key = match.Groups["key"].Value;
        string expected = match.Groups["type"].Value switch
        {
            "System.Int32" or "System.Int64" or "System.Int16" or "System.UInt32" or "System.UInt64" => "a whole number",
            "System.Double" or "System.Single" or "System.Decimal" => "a number",
            "System.Boolean" => "true or false",
            "System.TimeSpan" => "a duration such as 00:00:30",
            var type => $"a {type.Split('.')[^1]}",
        };
        return (key, $"{key} must be {expected} (got '{match.Groups["value"].Value}').");
    }

    [GeneratedRegex(@"^Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'\.$", RegexOptions.Singleline)]
    private static partial Regex FailedConversion();
}
