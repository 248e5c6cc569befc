namespace Anteroom.Simulator.Generation;

/// <summary>
/// Deterministic filler text: one short word per token, each with a leading space, so a stream reads as words and
/// its concatenation can be checked. A tiny linear congruential generator keeps it allocation-free.
/// </summary>
internal struct WordSource(uint seed)
{
    private static readonly string[] Words =
    [
        " the", " queue", " moves", " one", " step", " at", " a", " time", " and", " every", " user", " waits",
        " their", " fair", " turn", " while", " tokens", " flow", " back", " from", " busy", " model", " server",
        " slots", " free", " up", " soon", " so", " the", " next", " request", " runs", " now", " with", " no",
        " timeout", " or", " race", " between", " clients", " who", " share", " few", " GPUs", " in", " this",
        " quiet", " room", " before", " answers", " arrive", " steady", " and", " calm", " as", " streams",
        " finish", " cleanly", " here", " is", " more", " text", " for", " you",
    ];

    private uint _state = seed;

    public string Next() => Words[NextIndex() % (uint)Words.Length];

    /// <summary>A plausible token id, for Ollama's <c>context</c> array.</summary>
    public int NextTokenId() => (int)(NextIndex() % 128_000);

    private uint NextIndex()
    {
        _state = unchecked(_state * 1_664_525u + 1_013_904_223u);
        // The high bits of an LCG are the well-mixed ones.
        return _state >> 8;
    }
}
