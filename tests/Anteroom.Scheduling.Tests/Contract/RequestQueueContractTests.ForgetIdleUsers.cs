using CsCheck;

namespace Anteroom.Scheduling.Tests.Contract;

// forgetting idle users: it frees the memory of users who hold nothing and owe nothing, and nothing anyone can
// observe — admissions, refusals, places, the order of dispatch — may change because of it
public abstract partial class RequestQueueContractTests
{
    [Fact]
    public async Task ForgetIdleUsers_NeverForgetsAUserWhoHoldsATicket_EvenOneWhoOwesNothing()
    {
        await using var h = Harness(new SchedulerOptions { MaxInFlightPerUser = 2 }, Backend("gpu", 2, "m"));
        // Alice's first request ended far shorter than its cap let the queue expect: what it gives back leaves her
        // owing nothing, but her second still runs, and it must still count against her limit.
        var first = await h.AdmitAsync("alice", maxOutputTokens: 100);
        await h.AdmitAsync("alice", maxOutputTokens: 100);
        (await h.LeaseOfAsync(first)).Complete(0, 0);

        Assert.Equal(0, await h.Queue.ForgetIdleUsersAsync());

        await h.AdmitAsync("alice");
        Assert.Equal(RefusalReason.UserInFlightLimit, (await h.TryAdmitAsync("alice")).Refusal!.Reason);
    }

    [Fact]
    public async Task ForgetIdleUsers_NeverForgetsAUserWhoseTicketsWait_SoTheirPlacesAndLimitsStay()
    {
        await using var h = Harness(new SchedulerOptions { MaxWaitingPerUser = 2 }, Backend("gpu", 1, "m"));
        await h.AdmitAsync("alice", promptTokens: 300);
        var waiting = new[] { await h.AdmitAsync("bob"), await h.AdmitAsync("bob"), await h.AdmitAsync("carol", promptTokens: 50) };
        var before = await h.PlacesOfAsync(waiting);

        Assert.Equal(0, await h.Queue.ForgetIdleUsersAsync());

        Assert.Equal(before, await h.PlacesOfAsync(waiting));
        Assert.Equal(RefusalReason.UserQueueFull, (await h.TryAdmitAsync("bob")).Refusal!.Reason);
    }

    [Fact]
    public async Task ForgetIdleUsers_KeepsAUserWhoStillOwesService_SoTheDebtStillOrdersItsNextTicket()
    {
        // Long enough a wait for the estimates that heavy's long run leaves behind.
        await using var h = Harness(new SchedulerOptions { MaxWait = TimeSpan.FromHours(2) }, Backend("gpu", 1, "m"));
        // Heavy ran far longer than its cap let the queue expect, while light waited: heavy now owes service.
        var heavy = await h.AdmitAsync("heavy", maxOutputTokens: 10);
        var light = await h.AdmitAsync("light", maxOutputTokens: 10);
        (await h.LeaseOfAsync(heavy)).Complete(0, 50_000);

        Assert.Equal(0, await h.Queue.ForgetIdleUsersAsync());

        // With its debt (at most one request's worth) heavy's next ticket goes behind light's next one; forgotten,
        // it would start at the queue's clock, ahead of both of light's.
        var lightNext = await h.AdmitAsync("light", maxOutputTokens: 10);
        var lightLater = await h.AdmitAsync("light", maxOutputTokens: 10);
        var heavyNext = await h.AdmitAsync("heavy", maxOutputTokens: 10);
        Assert.Equal([1, 2, 3], (await h.PlacesOfAsync([lightNext, heavyNext, lightLater])).Select(p => p!.Value.Position));
        Assert.Equal([light, lightNext, heavyNext, lightLater], await h.RunInOrderAsync());
    }

    [Fact]
    public Task ForgettingIdleUsersBeforeEveryStep_NeverChangesAdmissionsPlacesOrDispatches() =>
        Gen.Select(
            Gen.Int[1, 3],
            Gen.Int[1, 2],
            Gen.Frequency(
                (6, Gen.Select(Gen.Int[0, 5], Gen.Int[0, 1], Gen.Int[0, 2], Gen.Int[0, 2000], Gen.Int[0, 400],
                    (user, model, tier, prompt, output) => (IdleStep)new IdleStep.Arrive(user, model, Tiers[tier], prompt, output == 0 ? null : output))),
                (4, Gen.Select(Gen.Int[0, 7], Gen.Int[0, 3000], (pick, output) => (IdleStep)new IdleStep.Complete(pick, output))),
                (1, Gen.Int[0, 7].Select(pick => (IdleStep)new IdleStep.Requeue(pick))),
                (1, Gen.Int[0, 7].Select(pick => (IdleStep)new IdleStep.CancelWaiting(pick))),
                (1, Gen.Int[0, 7].Select(pick => (IdleStep)new IdleStep.CancelRunning(pick))),
                (2, Gen.Int[0, 20_000].Select(ms => (IdleStep)new IdleStep.Advance(ms)))).Array[1, 80])
        .SampleAsync(
            async run =>
            {
                var (sharedSlots, ownSlots, steps) = run;
                var options = new SchedulerOptions
                {
                    MaxQueueLength = 16,
                    MaxWaitingPerUser = 3,
                    MaxInFlightPerUser = 4,
                    MaxWait = TimeSpan.FromMinutes(2),
                };
                BackendDefinition[] backends = [Backend("shared", sharedSlots, "a", "b"), Backend("own", ownSlots, "b")];
                var plain = new IdleTwin(Harness(options, backends));
                var forgetful = new IdleTwin(Harness(options, backends));
                await using (plain.Harness)
                await using (forgetful.Harness)
                {
                    foreach (var step in steps)
                    {
                        await forgetful.ForgetAsync();
                        string expected = await plain.ApplyAsync(step);
                        string actual = await forgetful.ApplyAsync(step);
                        Assert.Equal(expected, actual);
                    }
                }
            },
            iter: PropertyRuns(1000),
            print: run => $"{run.Item1} shared slots, {run.Item2} own slots{Environment.NewLine}{string.Join(Environment.NewLine, run.Item3.Select(s => s.ToString()))}");

    private abstract record IdleStep
    {
        public sealed record Arrive(int User, int Model, double Weight, int PromptTokens, int? MaxOutputTokens) : IdleStep;

        public sealed record Complete(int Pick, int OutputTokens) : IdleStep;

        public sealed record Requeue(int Pick) : IdleStep;

        public sealed record CancelWaiting(int Pick) : IdleStep;

        public sealed record CancelRunning(int Pick) : IdleStep;

        public sealed record Advance(int Milliseconds) : IdleStep;
    }

    /// <summary>A queue driven by steps, describing after each what a user or an operator could see.</summary>
    private sealed class IdleTwin(QueueHarness h)
    {
        // Owners the queue may still keep an account of: everyone who asked, until a forgetting is known to have
        // dropped them.
        private readonly HashSet<string> _mayBeKnown = new(StringComparer.Ordinal);
        private int _next;

        public QueueHarness Harness => h;

        /// <summary>Forgets idle users, checking it never counts more than the owners who hold no ticket.</summary>
        public async Task ForgetAsync()
        {
            var holders = (await h.WaitingAsync()).Select(w => w.Owner)
                .Concat((await h.RunningAsync()).Select(r => h.TicketWithId(r.Id).Owner))
                .ToHashSet(StringComparer.Ordinal);
            var idle = _mayBeKnown.Where(owner => !holders.Contains(owner)).ToList();

            int forgotten = await h.Queue.ForgetIdleUsersAsync();

            Assert.InRange(forgotten, 0, idle.Count);
            if (forgotten == idle.Count)
            {
                _mayBeKnown.ExceptWith(idle);
            }
        }

        public async Task<string> ApplyAsync(IdleStep step)
        {
            string result = "";
            switch (step)
            {
                case IdleStep.Arrive arrive:
                    string owner = $"u{arrive.User}";
                    _mayBeKnown.Add(owner);
                    var admission = await h.TryAdmitAsync(new TicketRequest
                    {
                        Id = $"t{++_next}",
                        Owner = owner,
                        Model = arrive.Model == 0 ? "a" : "b",
                        Weight = arrive.Weight,
                        PromptTokens = arrive.PromptTokens,
                        MaxOutputTokens = arrive.MaxOutputTokens,
                    });
                    result = admission.IsAdmitted ? "admitted" : $"{admission.Refusal.Reason} retry {admission.Refusal.RetryAfter}";
                    break;
                case IdleStep.Complete complete when await PickRunningAsync(complete.Pick) is { } lease:
                    lease.Complete(lease.Ticket.PromptTokens, complete.OutputTokens);
                    break;
                case IdleStep.Requeue requeue when await PickRunningAsync(requeue.Pick) is { } lease:
                    result = h.TryRequeue(lease) ? "requeued" : "ended";
                    break;
                case IdleStep.CancelRunning cancel when await PickRunningAsync(cancel.Pick) is { } lease:
                    Assert.True(await h.Queue.CancelAsync(lease.Ticket.Id));
                    lease.Dispose();
                    break;
                case IdleStep.CancelWaiting cancel when await h.WaitingAsync() is { Count: > 0 } waiting:
                    Assert.True(await h.Queue.CancelAsync(waiting[cancel.Pick % waiting.Count].Id));
                    break;
                case IdleStep.Advance advance:
                    h.Time.Advance(TimeSpan.FromMilliseconds(advance.Milliseconds));
                    break;
            }

            var queued = (await h.WaitingAsync()).Select(w => $"{w.Id}@{w.Model}{w.Position}");
            var runs = (await h.RunningAsync()).Select(r => $"{r.Id}@{r.Backend}").Order(StringComparer.Ordinal);
            return $"{result} | waiting {string.Join(",", queued)} | running {string.Join(",", runs)}";
        }

        private async Task<SlotLease?> PickRunningAsync(int pick)
        {
            var running = (await h.RunningAsync()).Select(r => r.Id).Order(StringComparer.Ordinal).ToList();
            return running.Count == 0 ? null : await h.LeaseOfAsync(h.TicketWithId(running[pick % running.Count]));
        }
    }
}
