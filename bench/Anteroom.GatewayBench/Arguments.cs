using System.Globalization;

namespace Anteroom.GatewayBench;

/// <summary><c>--name value</c> pairs, each with a default.</summary>
internal sealed class Arguments(string[] args)
{
    public string Text(string name, string? fallback = null)
    {
        int at = Array.IndexOf(args, "--" + name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : fallback ?? throw new ArgumentException($"--{name} is required.");
    }

    public int Number(string name, int fallback) => int.Parse(Text(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

    public double Real(string name, double fallback) => double.Parse(Text(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
}
