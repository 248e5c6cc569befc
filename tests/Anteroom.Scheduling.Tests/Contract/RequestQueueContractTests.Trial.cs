namespace Anteroom.Scheduling.Tests.Contract;

// backend trials: an unhealthy backend lets one ticket through when told to, and says so on its lease, because
// whoever judges the backend reads the verdict from that lease alone
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task AllowBackendTrial_AdmitsAndDispatchesExactlyOneArrival_AndRefusesTheRestUntilItsHealthIsKnown()
    {
        await using var h = Harness(Backend("a", 4, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);

        await h.Queue.AllowBackendTrialAsync("a");
        var trial = await h.AdmitAsync("alice");
        var burst = new List<Admission>();
        for (int i = 0; i < 5; i++)
        {
            burst.Add(await h.TryAdmitAsync($"user{i}"));
        }

        Assert.Equal("a", (await h.LeaseOfAsync(trial)).Backend);
        Assert.All(burst, admission => Assert.Equal(RefusalReason.NoHealthyBackend, admission.Refusal!.Reason));

        await h.Queue.SetBackendHealthAsync("a", true);
        Assert.True((await h.TryAdmitAsync("bob")).IsAdmitted);
    }

    [Fact]
    public async Task AllowBackendTrial_GivesTheSlotToTheHeadOfTheQueue_NotToEveryWaitingTicket()
    {
        await using var h = Harness(Backend("a", 4, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 4, waiting: 3);

        await h.Queue.AllowBackendTrialAsync("a");

        Assert.Equal(TicketState.Running, (await h.StateOfAsync(waiting[0])));
        Assert.All(await h.StatesOfAsync(waiting.Skip(1)), s => Assert.Equal(TicketState.Waiting, s));
    }

    [Fact]
    public async Task AllowBackendTrial_GivesExactlyOneLease_AndItIsATrial()
    {
        await using var h = Harness(Backend("a", 4, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 4, waiting: 3);

        await h.Queue.AllowBackendTrialAsync("a");
        var trial = await h.LeaseOfAsync(waiting[0]);
        trial.Complete(0, 256);

        // Ending the trial is not the verdict: until it is told, the backend stays shut to the rest.
        Assert.True(trial.IsTrial);
        Assert.Equal("a", trial.Backend);
        Assert.All(await h.StatesOfAsync(waiting.Skip(1)), s => Assert.Equal(TicketState.Waiting, s));
        Assert.Equal(0, (await h.CountsAsync()).Running);
    }

    [Fact]
    public async Task AllowBackendTrial_WhenTheUnhealthyBackendsSlotsAreBusy_LetsOneTicketThroughOnceASlotFrees()
    {
        await using var h = Harness(Backend("a", 2, "m"));
        var running = await h.AdmitManyAsync(2, "alice");
        var waiting = await h.AdmitManyAsync(2, "bob");
        await h.Queue.SetBackendHealthAsync("a", false);

        await h.Queue.AllowBackendTrialAsync("a");
        Assert.All(await h.StatesOfAsync(waiting), s => Assert.Equal(TicketState.Waiting, s));
        (await h.LeaseOfAsync(running[0])).Complete(0, 256);
        (await h.LeaseOfAsync(running[1])).Complete(0, 256);

        Assert.True((await h.LeaseOfAsync(waiting[0])).IsTrial);
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(waiting[1]));
    }

    [Fact]
    public async Task Leases_OnHealthyBackends_AreNotTrials_EvenWhileAnotherBackendIsOnTrial()
    {
        await using var h = Harness(Backend("a", 1, "m"), Backend("b", 1, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);
        await h.Queue.AllowBackendTrialAsync("a");

        var leases = await h.LeasesOfAsync([await h.AdmitAsync("alice"), await h.AdmitAsync("bob")]);
        var third = await h.AdmitAsync("carol");

        Assert.Equal(["a", "b"], leases.Select(l => l.Backend).Order(StringComparer.Ordinal));
        Assert.True(leases.Single(l => l.Backend == "a").IsTrial);
        Assert.False(leases.Single(l => l.Backend == "b").IsTrial);
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(third));
    }

    [Fact]
    public async Task AllowBackendTrial_OnAHealthyBackend_ChangesNothing()
    {
        await using var h = Harness(Backend("a", 2, "m"));

        await h.Queue.AllowBackendTrialAsync("a");
        var tickets = await h.AdmitManyAsync(3, "alice");

        Assert.All(await h.LeasesOfAsync(tickets.Take(2)), l => Assert.False(l.IsTrial));
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(tickets[2]));
    }

    [Fact]
    public async Task SetBackendHealth_Unhealthy_WithdrawsAnUnusedTrial()
    {
        await using var h = Harness(Backend("a", 1, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);
        await h.Queue.AllowBackendTrialAsync("a");

        await h.Queue.SetBackendHealthAsync("a", false);

        Assert.Equal(RefusalReason.NoHealthyBackend, (await h.TryAdmitAsync("alice")).Refusal!.Reason);
    }

    [Fact]
    public async Task ATrialCancelledBeforeAVerdict_LetsTheNextTrialThroughToTheNextTicket()
    {
        await using var h = Harness(Backend("a", 4, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 4, waiting: 3);
        await h.Queue.AllowBackendTrialAsync("a");

        (await h.LeaseOfAsync(waiting[0])).Cancel();
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(waiting[1]));
        await h.Queue.AllowBackendTrialAsync("a");

        var second = await h.LeaseOfAsync(waiting[1]);
        Assert.True(second.IsTrial);
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(waiting[2]));
    }

    [Fact]
    public async Task ATrialRequeuedBeforeAVerdict_GoesThroughAgainAsTheNextTrial_AheadOfTheOthers()
    {
        await using var h = Harness(Backend("a", 4, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 4, waiting: 3);
        await h.Queue.AllowBackendTrialAsync("a");

        Assert.True(h.TryRequeue(await h.LeaseOfAsync(waiting[0])));
        Assert.Equal(1, await h.PositionOfAsync(waiting[0]));
        await h.Queue.AllowBackendTrialAsync("a");

        var again = await h.LeaseOfAsync(waiting[0]);
        Assert.True(again.IsTrial);
        Assert.Equal(2, waiting[0].Attempts);
        Assert.All(await h.StatesOfAsync(waiting.Skip(1)), s => Assert.Equal(TicketState.Waiting, s));
    }

    [Fact]
    public async Task SetBackendHealth_HealthyWhileATrialRuns_ResumesNormalDispatch()
    {
        await using var h = Harness(Backend("a", 3, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 3, waiting: 4);
        await h.Queue.AllowBackendTrialAsync("a");
        var trial = await h.LeaseOfAsync(waiting[0]);

        await h.Queue.SetBackendHealthAsync("a", true);

        var resumed = await h.LeasesOfAsync(waiting.Skip(1).Take(2));
        Assert.All(resumed, l => Assert.False(l.IsTrial));
        Assert.True(trial.IsTrial);
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(waiting[3]));

        trial.Complete(0, 256);
        Assert.False((await h.LeaseOfAsync(waiting[3])).IsTrial);
        Assert.True((await h.TryAdmitAsync("carol")).IsAdmitted);
    }

    [Fact]
    public async Task SetBackendHealth_HealthyBeforeAnAllowedTrialIsUsed_GivesOnlyOrdinaryLeases()
    {
        await using var h = Harness(Backend("a", 2, "m"));
        await h.Queue.SetBackendHealthAsync("a", false);
        await h.Queue.AllowBackendTrialAsync("a");

        await h.Queue.SetBackendHealthAsync("a", true);
        var tickets = await h.AdmitManyAsync(3, "alice");

        Assert.All(await h.LeasesOfAsync(tickets.Take(2)), l => Assert.False(l.IsTrial));
        (await h.LeaseOfAsync(tickets[0])).Complete(0, 256);
        Assert.False((await h.LeaseOfAsync(tickets[2])).IsTrial);
    }

    [Fact]
    public async Task AllowBackendTrial_AfterTheBackendFailsAgain_GivesAFreshTrial()
    {
        await using var h = Harness(Backend("a", 2, "m"));
        var waiting = await WaitingOnAnUnhealthyBackendAsync(h, "a", slots: 2, waiting: 4);
        await h.Queue.AllowBackendTrialAsync("a");
        (await h.LeaseOfAsync(waiting[0])).Complete(0, 256);
        await h.Queue.SetBackendHealthAsync("a", true);
        var healthy = await h.LeasesOfAsync(waiting.Skip(1).Take(2));
        await h.Queue.SetBackendHealthAsync("a", false);
        healthy.ForEach(l => l.Fail());
        Assert.Equal(TicketState.Waiting, await h.StateOfAsync(waiting[3]));

        await h.Queue.AllowBackendTrialAsync("a");

        Assert.All(healthy, l => Assert.False(l.IsTrial));
        Assert.True((await h.LeaseOfAsync(waiting[3])).IsTrial);
    }

    /// <summary>
    /// Fills the backend with another user's tickets, queues <paramref name="waiting"/> of bob's behind them, marks
    /// the backend unhealthy and fails the running ones: bob's tickets wait on a backend with every slot free.
    /// </summary>
    private static async Task<List<Ticket>> WaitingOnAnUnhealthyBackendAsync(QueueHarness h, string backend, int slots, int waiting)
    {
        var running = await h.AdmitManyAsync(slots, "alice");
        var queued = await h.AdmitManyAsync(waiting, "bob");
        await h.Queue.SetBackendHealthAsync(backend, false);
        foreach (var ticket in running)
        {
            (await h.LeaseOfAsync(ticket)).Fail();
        }

        return queued;
    }
}
