using CsCheck;
using Microsoft.Extensions.Time.Testing;
using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

/// <summary>Forgetting idle users frees their memory without changing anything anyone can observe.</summary>
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

    [Fact]
    public void ForgetIdleUsers_KeepsAUserWhoStillOwesService()
    {
        using var h = new SchedulerHarness(Backend("gpu", 1, "m"));
        // The heavy user ran far more than estimated while another user waited: the debt must survive idleness.
        var heavy = h.Admit("heavy", maxOutputTokens: 10);
        var light = h.Admit("light", maxOutputTokens: 10);
        LeaseOf(heavy).Complete(0, 50_000);

        Assert.Equal(0, h.Scheduler.ForgetIdleUsers());
        Assert.Equal(2, h.Scheduler.TrackedUsers);
        LeaseOf(light).Complete(0, 10);
    }

    [Fact]
    public void ForgettingAfterEveryStep_NeverChangesAdmissionsPositionsOrDispatches() =>
        Gen.Select(
            Gen.Frequency(
                (5, Gen.Select(Gen.Int[0, 5], Gen.Int[0, 1], Gen.Int[0, 2000], Gen.Int[0, 400],
                    (user, model, prompt, output) => (Step)new Arrive(user, model, prompt, output == 0 ? null : output))),
                (4, Gen.Select(Gen.Int[0, 7], Gen.Int[0, 3000], (pick, output) => (Step)new Complete(pick, output))),
                (1, Gen.Int[0, 7].Select(pick => (Step)new CancelOne(pick))),
                (2, Gen.Int[0, 20_000].Select(ms => (Step)new Advance(ms)))).Array[1, 80],
            Gen.Int[1, 3])
        .Sample((steps, slots) =>
        {
            using var plain = new Twin(slots);
            using var forgetful = new Twin(slots);
            foreach (var step in steps)
            {
                string expected = plain.Apply(step);
                forgetful.Scheduler.ForgetIdleUsers();
                string actual = forgetful.Apply(step);
                Assert.Equal(expected, actual);
            }
        }, iter: 1000);

    private abstract record Step;

    private sealed record Arrive(int User, int Model, int Prompt, int? MaxOutput) : Step;

    private sealed record Complete(int Pick, int Output) : Step;

    private sealed record CancelOne(int Pick) : Step;

    private sealed record Advance(int Milliseconds) : Step;

    /// <summary>A scheduler driven by steps, describing after each what a user or operator could see.</summary>
    private sealed class Twin : IDisposable
    {
        private readonly FakeTimeProvider _time = new();
        private int _next;

        public Twin(int slots) => Scheduler = new Scheduler(new SchedulerOptions(), [new BackendDefinition("gpu", slots, ["a", "b"])], _time);

        public Scheduler Scheduler { get; }

        public string Apply(Step step)
        {
            string result = "";
            switch (step)
            {
                case Arrive arrive:
                    var admission = Scheduler.Admit(new TicketRequest
                    {
                        Id = $"t{++_next}",
                        Owner = $"u{arrive.User}",
                        Model = arrive.Model == 0 ? "a" : "b",
                        PromptTokens = arrive.Prompt,
                        MaxOutputTokens = arrive.MaxOutput,
                    });
                    result = admission.IsAdmitted ? "admitted" : admission.Refusal.Reason.ToString();
                    break;
                case Complete complete when Scheduler.GetRunning() is { Count: > 0 } running:
                    var lease = running.OrderBy(l => l.Ticket.Id, StringComparer.Ordinal).ElementAt(complete.Pick % running.Count);
                    lease.Complete(lease.Ticket.PromptTokens, complete.Output);
                    break;
                case CancelOne cancel when Scheduler.GetWaiting() is { Count: > 0 } waiting:
                    Scheduler.Cancel(waiting[cancel.Pick % waiting.Count].Ticket);
                    break;
                case Advance advance:
                    _time.Advance(TimeSpan.FromMilliseconds(advance.Milliseconds));
                    break;
            }

            var queue = Scheduler.GetWaiting().Select(w => $"{w.Ticket.Id}@{w.Position}");
            var runs = Scheduler.GetRunning().Select(l => l.Ticket.Id).Order(StringComparer.Ordinal);
            return $"{result} | waiting {string.Join(",", queue)} | running {string.Join(",", runs)}";
        }

        public void Dispose() => Scheduler.Dispose();
    }
}
