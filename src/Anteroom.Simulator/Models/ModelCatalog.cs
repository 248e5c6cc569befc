using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Anteroom.Simulator.Models;

/// <summary>What the server tells about one model it serves; made up from the name, but stable from run to run.</summary>
internal sealed record SimulatedModel(string Name, string Family, string ParameterSize, long ParameterCount, long Size, string Digest)
{
    public const string Format = "gguf";
    public const string Quantization = "Q4_K_M";
    public const int ContextLength = 131_072;
}

/// <summary>The served models, found by name the way Ollama matches them.</summary>
internal sealed partial class ModelCatalog
{
    /// <summary>Fixed so that listings are identical from run to run.</summary>
    public static readonly DateTime ModifiedAt = new(2025, 1, 15, 12, 0, 0, DateTimeKind.Utc);

    private readonly Dictionary<string, SimulatedModel> _byKey = new(StringComparer.OrdinalIgnoreCase);

    public ModelCatalog(IEnumerable<string> names)
    {
        var models = new List<SimulatedModel>();
        foreach (var name in names)
        {
            var model = Describe(name.Trim());
            if (_byKey.TryAdd(Key(model.Name), model))
                models.Add(model);
        }

        Models = models;
    }

    public IReadOnlyList<SimulatedModel> Models { get; }

    public SimulatedModel? Find(string? name) =>
        string.IsNullOrWhiteSpace(name) ? null : _byKey.GetValueOrDefault(Key(name.Trim()));

    // Ollama reads a name without a tag as ":latest" and compares names without regard to case.
    private static string Key(string name) =>
        name.IndexOf(':', name.LastIndexOf('/') + 1) < 0 ? name + ":latest" : name;

    private static SimulatedModel Describe(string name)
    {
        var baseName = name[(name.LastIndexOf('/') + 1)..];
        var family = FamilyPattern().Match(baseName) is { Success: true } f ? f.Value.ToLowerInvariant() : "llama";
        var parameters = SizePattern().Match(name) is { Success: true } s
            ? (long)(double.Parse(s.Groups[1].Value, CultureInfo.InvariantCulture) * 1e9)
            : 8_000_000_000L;
        var parameterSize = parameters >= 1_000_000_000
            ? (parameters / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + "B"
            : (parameters / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M";
        var digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        // Four-bit quantisation stores a little over half a byte per parameter.
        return new SimulatedModel(name, family, parameterSize, parameters, (long)(parameters * 0.6), digest);
    }

    [GeneratedRegex("^[A-Za-z]+")]
    private static partial Regex FamilyPattern();

    [GeneratedRegex(@"(\d+(?:\.\d+)?)[bB](?![A-Za-z])")]
    private static partial Regex SizePattern();
}
