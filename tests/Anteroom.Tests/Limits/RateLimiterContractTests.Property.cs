using Anteroom.Limits;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Limits;

// random operations, against every implementation
public abstract partial class RateLimiterContractTests
{
    private sealed record Admission(long AtMs, int Tokens);

    /// <summary>
    /// Random acquisitions, immediate releases, overrun settlements, sweeps and clock advances. Over every window
    /// [s, e] the requests and tokens admitted (and not released) stay within capacity + rate × (e − s), and every
    /// refusal is honest: waiting exactly its retry-after admits the same request.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task AdmissionsNeverExceedCapacityPlusRefill_AndRetryAfterIsHonest(int seed)
    {
        var random = new Random(seed);
        var time = new FakeTimeProvider();
        var limits = Create(time);
        var limit = new RateLimit(random.Next(1, 30), random.Next(50, 2000));
        int tokenCapacity = limit.TokensPerMinute!.Value;
        var admitted = new List<Admission>();
        long nowMs = 0;

        void Advance(TimeSpan by)
        {
            Assert.Equal(0, by.Ticks % TimeSpan.TicksPerMillisecond);
            time.Advance(by);
            nowMs += (long)by.TotalMilliseconds;
        }

        for (int op = 0; op < 2000; op++)
        {
            int roll = random.Next(100);
            if (roll < 35)
            {
                Advance(TimeSpan.FromMilliseconds(random.Next(0, 5000)));
            }
            else if (roll < 90)
            {
                int tokens = random.Next(0, tokenCapacity + 1);
                var decision = await limits.TryAcquireAsync("alice", limit, tokens);
                if (!decision.Allowed && random.Next(2) == 0)
                {
                    Advance(decision.RetryAfter);
                    decision = await limits.TryAcquireAsync("alice", limit, tokens);
                    Assert.True(decision.Allowed, $"refused again after waiting its retry-after at op {op}");
                }

                if (decision.Allowed)
                {
                    if (random.Next(10) == 0)
                    {
                        // A later admission step refused it, straight away.
                        await limits.ReleaseAsync("alice", limit, tokens);
                    }
                    else
                    {
                        admitted.Add(new Admission(nowMs, tokens));
                    }
                }
            }
            else if (roll < 95 && admitted.Count > 0)
            {
                var last = admitted[^1];
                await limits.SettleAsync("alice", limit, last.Tokens, last.Tokens + random.Next(0, 200));
            }
            else
            {
                await limits.SweepAsync();
            }
        }

        Assert.True(admitted.Count > 100, $"only {admitted.Count} admissions; the test exercises too little");
        AssertWithinBound(admitted, limit.RequestsPerMinute!.Value, _ => 1);
        AssertWithinBound(admitted, tokenCapacity, a => a.Tokens);
    }

    /// <summary>In exact integers: admitted − capacity ≤ capacity × elapsedMs / 60000 for every window.</summary>
    private static void AssertWithinBound(List<Admission> admitted, long capacity, Func<Admission, long> amount)
    {
        for (int start = 0; start < admitted.Count; start++)
        {
            long sum = 0;
            for (int end = start; end < admitted.Count; end++)
            {
                sum += amount(admitted[end]);
                long elapsedMs = admitted[end].AtMs - admitted[start].AtMs;
                Assert.True((sum - capacity) * 60_000 <= capacity * elapsedMs,
                    $"{sum} admitted in {elapsedMs} ms against {capacity} per minute");
            }
        }
    }
}
