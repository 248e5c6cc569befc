using System.Buffers.Binary;

namespace Anteroom.Simulator.Embeddings;

/// <summary>
/// Deterministic unit-length vectors derived from a hash of the text: the same text always maps to the same vector,
/// across runs and processes, and different texts to different ones.
/// </summary>
internal static class EmbeddingVectors
{
    public const int Dimensions = 32;

    public static float[] For(string text)
    {
        // FNV-1a, not string.GetHashCode, which is randomised per process.
        var state = 14_695_981_039_346_656_037UL;
        foreach (var c in text)
            state = (state ^ c) * 1_099_511_628_211UL;

        var vector = new float[Dimensions];
        var sumOfSquares = 0.0;
        for (var i = 0; i < vector.Length; i++)
        {
            var value = (SplitMix(ref state) >> 11) * (1.0 / (1UL << 53)) * 2 - 1;
            vector[i] = (float)value;
            sumOfSquares += value * value;
        }

        var scale = sumOfSquares > 0 ? 1 / Math.Sqrt(sumOfSquares) : 1;
        for (var i = 0; i < vector.Length; i++)
            vector[i] = (float)(vector[i] * scale);
        return vector;
    }

    /// <summary>The vector as OpenAI's <c>encoding_format: "base64"</c> carries it: little-endian float32s.</summary>
    public static string ToBase64(float[] vector)
    {
        var bytes = new byte[vector.Length * sizeof(float)];
        for (var i = 0; i < vector.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vector[i]);
        return Convert.ToBase64String(bytes);
    }

    private static ulong SplitMix(ref ulong state)
    {
        var z = state += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}
