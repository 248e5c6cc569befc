namespace Anteroom.Simulator.Generation;

/// <summary>
/// How much slower each token comes when several generations share a continuously batched GPU. Shaped after the
/// published vLLM numbers for Llama-3.1-8B on one H100: 6.5 ms/token alone, 10.9 at 16 streams (1.7×), 47 at 64
/// (7×). Below the knee the cost grows linearly to 1.7×; past it, in proportion to the load, so total throughput
/// stays flat as it does on a saturated GPU.
/// </summary>
internal static class BatchingCurve
{
    private const double SlowdownAtKnee = 1.7;
    private const double ExponentPastKnee = 1.05;

    public static double Slowdown(int active, int knee)
    {
        if (active <= 1)
            return 1;
        if (knee <= 1)
            return Math.Pow(active, ExponentPastKnee);
        if (active <= knee)
            return 1 + (SlowdownAtKnee - 1) * (active - 1) / (knee - 1);
        return SlowdownAtKnee * Math.Pow((double)active / knee, ExponentPastKnee);
    }
}
