using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

/// <summary>
/// Forgetting idle users frees the in-process queue's memory. That it changes nothing anyone can observe is part of
/// the queue's contract (Contract/RequestQueueContractTests.ForgetIdleUsers.cs); here, that the accounts really go.
/// </summary>
public sealed class ForgetIdleUsersTests
{
    [Fact]
    public void ForgetIdleUsers_DropsUsersWhoHoldAndOweNothing_AndKeepsTheRest()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        var idle = h.Admit("idle");
        LeaseOf(idle).Complete(0, 256);
        var first = h.Admit("other");
        var second = h.Admit("other");
        Assert.Equal(0, h.Scheduler.ForgetIdleUsers());

        // Once the queue's virtual time passes what "idle" was served, it owes nothing and is forgotten;
        // "other" holds a slot and stays.
        LeaseOf(first).Complete(0, 256);
        Assert.Equal(1, h.Scheduler.ForgetIdleUsers());
        Assert.Equal(1, h.Scheduler.TrackedUsers);

        // Served twice in a row, "other" is ahead of the queue's clock: forgetting it would forgive that.
        LeaseOf(second).Complete(0, 256);
        Assert.Equal(0, h.Scheduler.ForgetIdleUsers());
        Assert.Equal(1, h.Scheduler.TrackedUsers);
    }
}
