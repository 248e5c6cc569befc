using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class AdmissionTests
{
    [Fact]
    public void Admit_WithMaxOutputTokens_ExpectsNoMoreThanThat()
    {
        using var h = new SchedulerHarness();

        var ticket = h.Admit("alice", promptTokens: 100, maxOutputTokens: 10);

        Assert.Equal(10, ticket.ExpectedOutputTokens);
        Assert.Equal(100 + (2 * 10), ticket.Cost);
    }

    [Fact]
    public void Admit_AfterDispose_Throws()
    {
        var h = new SchedulerHarness();
        h.Dispose();

        Assert.Throws<ObjectDisposedException>(() => h.TryAdmit("alice"));
    }
}
