using Anteroom.Requests;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Limits;

public sealed class RefusalLogBudgetTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void TryTake_AllowsTheBudgetPerCallerPerMinute_ThenRefusesUntilTheNextMinute()
    {
        var budget = new RefusalLogBudget(3, _time);

        bool[] first = [.. Enumerable.Range(0, 5).Select(_ => budget.TryTake("alice"))];
        bool bob = budget.TryTake("bob");
        _time.Advance(TimeSpan.FromSeconds(59));
        bool stillFull = budget.TryTake("alice");
        _time.Advance(TimeSpan.FromSeconds(1));
        bool[] next = [.. Enumerable.Range(0, 4).Select(_ => budget.TryTake("alice"))];

        Assert.Equal([true, true, true, false, false], first);
        Assert.True(bob);
        Assert.False(stillFull);
        Assert.Equal([true, true, true, false], next);
    }

    [Fact]
    public void TryTake_WithABudgetOfZero_LogsNoRefusal()
    {
        var budget = new RefusalLogBudget(0, _time);

        Assert.False(budget.TryTake("alice"));
    }
}
