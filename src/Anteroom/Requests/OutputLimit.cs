using Anteroom.Configuration;

namespace Anteroom.Requests;

/// <summary>
/// The output limit every request runs under: the tier's cap under the gateway's ceiling, set on the generation and
/// spliced into a relayed body, so it holds on whichever path the request runs.
/// </summary>
internal static class OutputLimit
{
    /// <summary>The tier's output cap under the gateway's ceiling: no answer is unbounded, whatever the tier.</summary>
    public static int Cap(TierOptions tier, int ceiling) => Math.Min(tier.MaxOutputTokens ?? ceiling, ceiling);

    /// <summary>
    /// The request held to its output limit: a request that sets none (or Ollama's unlimited -1 and -2) gets the
    /// tier's cap, or the gateway's ceiling, and a relayed body has every output-length field it carries (whichever
    /// one its backend reads) held to it.
    /// </summary>
    public static Arrival Apply(Arrival ask, int ceiling)
    {
        if (ask.EmbeddingInputs is not null)
        {
            return ask;
        }

        int cap = Cap(ask.Caller.Tier, ceiling);
        return ask with
        {
            Generation = ask.Generation with { MaxOutputTokens = Math.Min(ask.Generation.MaxOutputTokens ?? cap, cap) },
            Relay = ask.Relay is { } relay ? relay with { Body = WithMaxTokens(relay.Body, ask.Protocol, cap) } : null,
        };
    }

    /// <summary>
    /// The relayed body with its output length held to <paramref name="cap"/> in every field backends read, spliced
    /// into the client's bytes (see <see cref="OutputLengthSplice"/>); the body itself when it is already held.
    /// </summary>
    public static byte[] WithMaxTokens(byte[] body, ClientProtocol protocol, int cap) => OutputLengthSplice.Apply(body, protocol, cap);
}
