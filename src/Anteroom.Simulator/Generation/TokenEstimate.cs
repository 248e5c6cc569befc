namespace Anteroom.Simulator.Generation;

/// <summary>Token counts without a tokenizer: about four characters per token, as for English text.</summary>
internal static class TokenEstimate
{
    public static int FromCharacters(long characters) => (int)Math.Clamp((characters + 3) / 4, 1, int.MaxValue);
}
