using Anteroom.Scheduling.Redis;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests.Contract;

/// <summary>The request-queue contract, run against the queue in a real Redis, each test under its own key prefix.</summary>
public sealed class RedisRequestQueueContractTests(RedisFixture redis) : RequestQueueContractTests, IClassFixture<RedisFixture>
{
    // Longer than any test moves the clock: the contract's runs never lose a lease (the replica tests do).
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromDays(1);

    /// <inheritdoc />
    protected override IRequestQueue CreateQueue(SchedulerOptions options, IReadOnlyList<BackendDefinition> backends, FakeTimeProvider time) =>
        new RedisRequestQueue(redis.Connection, RedisFixture.NewPrefix(), options, backends, time, LeaseDuration, "replica-1");

    /// <summary>A quarter: 250–500 random runs per property, each a few hundred Redis round trips.</summary>
    protected override double PropertyRunShare => 0.25;

    /// <inheritdoc />
    protected override Task SettleAsync(IRequestQueue queue) => ((RedisRequestQueue)queue).SettleAsync();
}
