using System.Runtime.CompilerServices;
using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

public sealed class DeadlineTests
{
    [Fact]
    public void Deadline_OfTicketThatLeftTheQueue_DoesNotKeepTheTicketReachable()
    {
        using var h = new SchedulerHarness();
        var cancelled = AdmitAndCancelWaitingTicket(h);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        // Its deadline entry is still queued (ten minutes away), but an ended ticket must be free to go.
        Assert.False(cancelled.IsAlive);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference AdmitAndCancelWaitingTicket(SchedulerHarness h)
    {
        h.Admit("a");
        var waiting = h.Admit("b");
        h.Scheduler.Cancel(waiting);
        return new WeakReference(waiting);
    }
}
