using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class DispatchTests
{
    [Fact]
    public void Find_ReturnsLiveTicketsOnly()
    {
        using var h = new SchedulerHarness();
        var ticket = h.Admit("alice", id: "req-1");

        Assert.Same(ticket, h.Scheduler.Find("req-1"));
        LeaseOf(ticket).Complete(0, 1);
        Assert.Null(h.Scheduler.Find("req-1"));
    }

    [Fact]
    public void Constructor_WithDuplicateBackendNames_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Scheduler(new SchedulerOptions(), [Backend("a", 1, "m"), Backend("a", 1, "m")]));
    }

    [Fact]
    public void Constructor_WithInvalidOptions_Throws()
    {
        var options = new SchedulerOptions { MaxDispatchAttempts = 0 };

        var error = Assert.Throws<ArgumentException>(() => new Scheduler(options, [Backend("a", 1, "m")]));
        Assert.Contains(nameof(SchedulerOptions.MaxDispatchAttempts), error.Message);
    }
}
