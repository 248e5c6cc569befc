using System.Globalization;

namespace Anteroom.Simulator;

/// <summary>The command-line grammar of <c>anteroom simulate</c>.</summary>
internal static class SimulatorArguments
{
    public const string UrlsFlag = "--urls";

    public static bool IsRate(double value) => value is >= 0 and <= 1;

    public static SimulatorOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var options = new SimulatorOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var (flag, value) = Read(args, ref i);
            switch (flag)
            {
                case "--models":
                    options.Models = Models(flag, Required(flag, value));
                    break;
                case "--parallel":
                    options.Parallel = Whole(flag, value, minimum: 1);
                    break;
                case "--max-queue":
                    options.MaxQueue = Whole(flag, value, minimum: 0);
                    break;
                case "--batching":
                    options.Batching = true;
                    break;
                case "--batch-knee":
                    options.BatchKnee = Whole(flag, value, minimum: 1);
                    break;
                case "--ttft-ms":
                    options.TtftMs = Number(flag, value, allowZero: true);
                    break;
                case "--tokens-per-second":
                    options.TokensPerSecond = Number(flag, value, allowZero: false);
                    break;
                case "--output-tokens":
                    options.OutputTokens = Whole(flag, value, minimum: 1);
                    break;
                case "--fail-before-first-token":
                    options.FailBeforeFirstTokenRate = Rate(flag, value);
                    break;
                case "--fail-mid-stream":
                    options.FailMidStreamRate = Rate(flag, value);
                    break;
                case "--stall":
                    options.StallRate = Rate(flag, value);
                    break;
                case "--disconnect":
                    options.DisconnectRate = Rate(flag, value);
                    break;
                case "--fault-cycle":
                    options.FaultCycle = Whole(flag, value, minimum: 0);
                    break;
                case "--seed":
                    options.Seed = Whole(flag, value, minimum: int.MinValue);
                    break;
                case UrlsFlag:
                    Required(flag, value);
                    break;
                default:
                    // The flag, not what followed it: Read has already taken that as its value.
                    throw new ArgumentException(flag.StartsWith("--", StringComparison.Ordinal) ? $"Unknown flag '{flag}'." : $"Unexpected argument '{flag}'.");
            }
        }

        if (options.FaultRateSum > 1 + 1e-9)
        {
            throw new ArgumentException(
                "--fail-before-first-token, --fail-mid-stream, --stall and --disconnect must add up to at most 1, because a generation meets at most one fault.");
        }

        return options;
    }

    /// <summary>The value of <c>--urls</c>, or null; every address must be an absolute http(s) URL.</summary>
    public static string? Urls(IReadOnlyList<string> args)
    {
        string? urls = null;
        for (var i = 0; i < args.Count; i++)
        {
            var (flag, value) = Read(args, ref i);
            if (flag == UrlsFlag)
                urls = Required(flag, value);
        }

        if (urls is null)
            return null;
        var parts = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0 || !parts.All(IsHttpUrl))
            throw new ArgumentException($"--urls takes one or more http:// addresses separated by ';', not '{urls}'.");
        return string.Join(';', parts);
    }

    private static bool IsHttpUrl(string text) =>
        Uri.TryCreate(text.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <summary>Reads one flag and, unless it is a switch, its value (inline after '=' or the next argument).</summary>
    private static (string Flag, string? Value) Read(IReadOnlyList<string> args, ref int i)
    {
        var arg = args[i] ?? string.Empty;
        var equals = arg.IndexOf('=', StringComparison.Ordinal);
        if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 0)
        {
            var switchFlag = arg[..equals];
            if (switchFlag == "--batching")
                throw new ArgumentException("--batching is a switch and takes no value.");
            return (switchFlag, arg[(equals + 1)..]);
        }

        if (arg == "--batching" || !arg.StartsWith("--", StringComparison.Ordinal))
            return (arg, null);

        // A following flag is not a value: "--models --parallel 2" lacks the models rather than naming one "--parallel".
        if (i + 1 < args.Count && !(args[i + 1] ?? string.Empty).StartsWith("--", StringComparison.Ordinal))
            return (arg, args[++i]);
        return (arg, null);
    }

    private static string Required(string flag, string? value) =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException($"{flag} needs a value.") : value;

    private static List<string> Models(string flag, string value)
    {
        var models = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .ToList();
        return models.Count > 0
            ? models
            : throw new ArgumentException($"{flag} takes at least one model name, separated by commas (e.g. llama3.1:8b,qwen2.5:7b), not '{value}'.");
    }

    private static int Whole(string flag, string? value, int minimum)
    {
        var expectation = minimum == int.MinValue ? "a whole number" : $"a whole number of at least {minimum}";
        return int.TryParse(Required(flag, value), NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) && number >= minimum
            ? number
            : throw new ArgumentException($"{flag} takes {expectation}, not '{value}'.");
    }

    private static double Number(string flag, string? value, bool allowZero)
    {
        var ok = double.TryParse(Required(flag, value), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
            && double.IsFinite(number) && (allowZero ? number >= 0 : number > 0);
        return ok ? number : throw new ArgumentException($"{flag} takes a number {(allowZero ? "of 0 or more" : "above 0")}, not '{value}'.");
    }

    private static double Rate(string flag, string? value)
    {
        var ok = double.TryParse(Required(flag, value), NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && IsRate(number);
        return ok ? number : throw new ArgumentException($"{flag} takes a rate between 0 and 1, not '{value}'.");
    }
}
