namespace Anteroom.Scheduling.Tests;

/// <summary>The in-process queue's answer to adoption: its holders die only with it, so there is never a ticket to adopt.</summary>
public sealed class InProcessAdoptionTests
{
    [Fact]
    public async Task Adopt_OnTheInProcessQueue_AnswersNullAtOnce_EvenForAWaitingTicketWithAGrace()
    {
        using var queue = (InProcessRequestQueue)RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], TimeProvider.System);
        await queue.AdmitAsync(new TicketRequest { Id = "run", Owner = "alice", Model = "m" });
        await queue.AdmitAsync(new TicketRequest { Id = "wait", Owner = "bob", Model = "m", HolderGrace = TimeSpan.FromMinutes(1) });

        var adopted = queue.AdoptAsync("wait");

        Assert.True(adopted.IsCompletedSuccessfully);
        Assert.Null(await adopted);
        Assert.Equal(1, (await queue.GetPlaceAsync("wait"))?.Position);
    }
}
