using Anteroom.Configuration;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>What the gateway tells users about its backends beyond the scheduler's figures.</summary>
internal sealed class BackendsView(IOptions<AnteroomOptions> options, EmbeddedSimulator? simulator = null)
{
    private readonly Dictionary<string, string> _protocols =
        options.Value.Backends.ToDictionary(b => b.Name!, b => b.Protocol.ToLowerInvariant(), StringComparer.Ordinal);

    /// <summary>Whether the only backend is the built-in simulator (no real model answers).</summary>
    public bool Simulated => simulator is not null;

    public string ProtocolName(string backend) => _protocols.GetValueOrDefault(backend, "ollama");
}
