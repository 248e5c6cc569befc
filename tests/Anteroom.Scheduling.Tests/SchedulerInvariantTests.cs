using CsCheck;
using Microsoft.Extensions.Time.Testing;
using static Anteroom.Scheduling.Tests.SchedulerHarness;

namespace Anteroom.Scheduling.Tests;

/// <summary>
/// Invariants the scheduler must never break, checked after every step of thousands of random operation sequences
/// on random backend layouts.
/// </summary>
public sealed class SchedulerInvariantTests
{
    private static readonly string[] ModelNames = ["llama", "qwen", "mistral"];
    private static readonly double[] Tiers = [1, 2, 4];

    private static readonly Gen<Layout> LayoutGen = Gen.Select(
        Gen.Int[2, 3],
        Gen.Select(Gen.Int[1, 4], Gen.Int[1, 7]).Array[1, 3],
        (modelCount, backends) => new Layout(modelCount, [.. backends.Select((b, i) => Backend(i, b.Item1, b.Item2, modelCount))]));

    private static readonly Gen<Operation> OperationGen = Gen.Frequency(
        (6, Gen.Select(Gen.Int[0, 4], Gen.Int[0, 2], Gen.Int[0, 2], Gen.Int[0, 4000], Gen.Int[0, 600], Gen.Int[0, 180],
            (user, model, tier, prompt, maxOutput, maxWait) => (Operation)new Arrive(
                user, model, Tiers[tier], prompt, maxOutput == 0 ? null : maxOutput, maxWait == 0 ? null : maxWait))),
        (4, Gen.Select(Gen.Int[0, 15], Gen.Int[0, 1000], Gen.Int[0, 9],
            (pick, output, ending) => (Operation)new Finish(pick, output, ending switch { 0 => Ending.Fail, 1 => Ending.Dispose, _ => Ending.Complete }))),
        (1, Gen.Int[0, 15].Select(pick => (Operation)new FirstToken(pick))),
        (2, Gen.Select(Gen.Int[0, 63], Gen.Bool, (pick, holderEnds) => (Operation)new CancelTicket(pick, holderEnds))),
        (2, Gen.Int[0, 30_000].Select(ms => (Operation)new AdvanceTime(ms))),
        (1, Gen.Int[0, 2].Select(backend => (Operation)new ToggleHealth(backend))));

    [Fact]
    public void RandomOperations_UnderFairPolicy_KeepEveryInvariant() =>
        Gen.Select(LayoutGen, OperationGen.Array[1, 60]).Sample(
            (layout, operations) => new Simulation(layout, SchedulingPolicy.Fair).Run(operations),
            iter: 2000,
            print: Print);

    [Fact]
    public void RandomOperations_UnderFifoPolicy_KeepEveryInvariant() =>
        Gen.Select(LayoutGen, OperationGen.Array[1, 60]).Sample(
            (layout, operations) => new Simulation(layout, SchedulingPolicy.Fifo).Run(operations),
            iter: 1000,
            print: Print);

    private static string Print((Layout Layout, Operation[] Operations) run) =>
        $"{run.Layout}{Environment.NewLine}{string.Join(Environment.NewLine, run.Operations.Select(o => o.ToString()))}";

    private static BackendDefinition Backend(int index, int slots, int modelMask, int modelCount)
    {
        int mask = modelMask & ((1 << modelCount) - 1);
        var models = ModelNames.Take(modelCount).Where((_, i) => ((mask == 0 ? 1 : mask) & (1 << i)) != 0).ToArray();
        return new BackendDefinition($"gpu{index}", slots, models);
    }

    private sealed record Layout(int ModelCount, BackendDefinition[] Backends)
    {
        public override string ToString() =>
            $"{ModelCount} models; " + string.Join("; ", Backends.Select(b => $"{b.Name} {b.Slots} slots [{string.Join(",", b.Models)}]"));
    }

    private abstract record Operation;

    private sealed record Arrive(int User, int Model, double Weight, int PromptTokens, int? MaxOutputTokens, int? MaxWaitSeconds) : Operation;

    private sealed record Finish(int Pick, int OutputTokens, Ending Ending) : Operation;

    private sealed record FirstToken(int Pick) : Operation;

    private sealed record CancelTicket(int Pick, bool HolderEndsLease) : Operation;

    private sealed record AdvanceTime(int Milliseconds) : Operation;

    private sealed record ToggleHealth(int Backend) : Operation;

    private enum Ending
    {
        Complete,
        Fail,
        Dispose,
    }

    /// <summary>One run: a scheduler on fake time, what was admitted, and the outcomes seen so far.</summary>
    private sealed class Simulation
    {
        private readonly FakeTimeProvider _time = new();
        private readonly Layout _layout;
        private readonly Scheduler _scheduler;
        private readonly List<Ticket> _admitted = [];
        private readonly Dictionary<Ticket, TicketOutcome> _outcomes = [];
        private long _refused;
        private int _nextId;

        public Simulation(Layout layout, SchedulingPolicy policy)
        {
            _layout = layout;
            var options = new SchedulerOptions
            {
                Policy = policy,
                MaxQueueLength = 40,
                MaxWaitingPerUser = 12,
                MaxInFlightPerUser = 16,
                MaxWait = TimeSpan.FromMinutes(3),
                Prior = new ServicePrior { TimeToFirstToken = TimeSpan.FromMilliseconds(200), TokensPerSecond = 50, OutputTokens = 100 },
            };
            _scheduler = new Scheduler(options, layout.Backends, _time);
        }

        public void Run(Operation[] operations)
        {
            using (_scheduler)
            {
                foreach (var operation in operations)
                {
                    var soleBefore = SoleWaitingPositions();
                    Apply(operation);
                    CheckInvariants(soleBefore);
                }

                CancelEverything();
            }
        }

        private void Apply(Operation operation)
        {
            switch (operation)
            {
                case Arrive arrive:
                    ApplyArrive(arrive);
                    break;
                case Finish finish:
                    var running = _scheduler.GetRunning();
                    if (running.Count > 0)
                    {
                        var lease = running[finish.Pick % running.Count];
                        switch (finish.Ending)
                        {
                            case Ending.Complete:
                                lease.Complete(lease.Ticket.PromptTokens, finish.OutputTokens);
                                break;
                            case Ending.Fail:
                                lease.Fail();
                                break;
                            default:
                                lease.Dispose();
                                break;
                        }
                    }

                    break;
                case FirstToken firstToken:
                    var leases = _scheduler.GetRunning();
                    if (leases.Count > 0)
                    {
                        leases[firstToken.Pick % leases.Count].MarkFirstToken();
                    }

                    break;
                case CancelTicket cancel:
                    ApplyCancel(cancel);
                    break;
                case AdvanceTime advance:
                    _time.Advance(TimeSpan.FromMilliseconds(advance.Milliseconds));
                    break;
                case ToggleHealth toggle:
                    var name = _layout.Backends[toggle.Backend % _layout.Backends.Length].Name;
                    _scheduler.SetBackendHealth(name, !_scheduler.IsBackendHealthy(name));
                    break;
            }
        }

        private void ApplyArrive(Arrive arrive)
        {
            var admission = _scheduler.Admit(new TicketRequest
            {
                Id = $"t{++_nextId}",
                Owner = $"user{arrive.User}",
                Model = ModelNames[arrive.Model % _layout.ModelCount],
                Weight = arrive.Weight,
                PromptTokens = arrive.PromptTokens,
                MaxOutputTokens = arrive.MaxOutputTokens,
                MaxWait = arrive.MaxWaitSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            });
            if (admission.IsAdmitted)
            {
                _admitted.Add(admission.Ticket);
                return;
            }

            _refused++;
            var refusal = admission.Refusal;
            if (refusal.Reason is RefusalReason.UnknownModel or RefusalReason.DuplicateId)
            {
                Assert.Null(refusal.RetryAfter);
            }
            else
            {
                Assert.NotNull(refusal.RetryAfter);
                Assert.True(refusal.RetryAfter >= TimeSpan.Zero, $"Negative Retry-After for {refusal.Reason}.");
            }
        }

        private void ApplyCancel(CancelTicket cancel)
        {
            var live = _admitted.Where(t => t.State != TicketState.Ended).ToList();
            if (live.Count == 0)
            {
                return;
            }

            var ticket = live[cancel.Pick % live.Count];
            bool wasRunning = ticket.State == TicketState.Running;
            Assert.True(_scheduler.Cancel(ticket));
            if (!wasRunning)
            {
                Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
                return;
            }

            Assert.True(ticket.Aborted.IsCancellationRequested);
            Assert.Equal(TicketState.Running, ticket.State);
            if (cancel.HolderEndsLease)
            {
                LeaseOf(ticket).Dispose();
                Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
            }
        }

        private void CancelEverything()
        {
            foreach (var ticket in _admitted.Where(t => t.State != TicketState.Ended).ToList())
            {
                bool wasRunning = ticket.State == TicketState.Running;
                Assert.True(_scheduler.Cancel(ticket));
                if (wasRunning)
                {
                    LeaseOf(ticket).Dispose();
                }
            }

            CheckInvariants([]);
            var snapshot = _scheduler.Snapshot();
            Assert.Equal(0, snapshot.Waiting);
            Assert.Equal(0, snapshot.Running);
            Assert.Equal(snapshot.Admitted, snapshot.Completed + snapshot.Failed + snapshot.Cancelled + snapshot.TimedOut);
            Assert.All(_admitted, t => Assert.Equal(TicketState.Ended, t.State));
        }

        /// <summary>Positions of the tickets that are their owner's only waiting ticket for their model.</summary>
        private Dictionary<Ticket, int> SoleWaitingPositions() =>
            _scheduler.GetWaiting()
                .GroupBy(w => (w.Ticket.Owner, w.Ticket.Model))
                .Where(g => g.Count() == 1)
                .ToDictionary(g => g.Single().Ticket, g => g.Single().Position);

        private void CheckInvariants(Dictionary<Ticket, int> soleBefore)
        {
            var snapshot = _scheduler.Snapshot();
            var running = _scheduler.GetRunning();
            var waiting = _scheduler.GetWaiting();

            CheckSlots(snapshot, running);
            CheckWorkConserving(snapshot);
            CheckOutcomes(snapshot, running);
            CheckPositions(snapshot, waiting);
            CheckFifoWithinOwnerAndModel(waiting);

            foreach (var (ticket, before) in soleBefore)
            {
                if (ticket.State == TicketState.Waiting)
                {
                    int now = _scheduler.GetPlace(ticket)!.Value.Position;
                    Assert.True(now <= before, $"{ticket} waited alone at position {before} and moved back to {now}.");
                }
            }
        }

        private void CheckSlots(SchedulerSnapshot snapshot, IReadOnlyList<SlotLease> running)
        {
            Assert.Equal(snapshot.Running, running.Count);
            foreach (var backend in snapshot.Backends)
            {
                Assert.InRange(backend.Running, 0, backend.Slots);
                Assert.Equal(backend.Running, running.Count(l => l.Backend == backend.Name));
            }

            foreach (var lease in running)
            {
                var definition = _layout.Backends.Single(b => b.Name == lease.Backend);
                Assert.Contains(lease.Ticket.Model, definition.Models);
            }
        }

        private static void CheckWorkConserving(SchedulerSnapshot snapshot)
        {
            var waitingByModel = snapshot.Models.ToDictionary(m => m.Model, m => m.Waiting);
            foreach (var backend in snapshot.Backends.Where(b => b.Healthy && b.Running < b.Slots))
            {
                foreach (var model in backend.Models)
                {
                    Assert.True(waitingByModel[model] == 0,
                        $"{backend.Name} has {backend.Slots - backend.Running} idle slots while {waitingByModel[model]} tickets wait for {model}.");
                }
            }
        }

        private void CheckOutcomes(SchedulerSnapshot snapshot, IReadOnlyList<SlotLease> running)
        {
            foreach (var ticket in _admitted)
            {
                switch (ticket.State)
                {
                    case TicketState.Waiting:
                        Assert.False(_outcomes.ContainsKey(ticket), $"{ticket} came back after ending.");
                        Assert.Null(ticket.Outcome);
                        Assert.False(((SchedulerTicket)ticket).Dispatched.IsCompleted);
                        break;
                    case TicketState.Running:
                        Assert.False(_outcomes.ContainsKey(ticket), $"{ticket} came back after ending.");
                        Assert.Contains(LeaseOf(ticket), running);
                        break;
                    default:
                        Assert.NotNull(ticket.Outcome);
                        if (_outcomes.TryGetValue(ticket, out var seen))
                        {
                            Assert.Equal(seen, ticket.Outcome);
                        }
                        else
                        {
                            _outcomes[ticket] = ticket.Outcome.Value;
                        }

                        var dispatch = Ended(((SchedulerTicket)ticket).Dispatched);
                        if (dispatch.Lease is null)
                        {
                            Assert.Equal(ticket.Outcome, dispatch.Outcome);
                            Assert.Null(ticket.FirstDispatchedAt);
                        }

                        break;
                }
            }

            // Counters that moved twice for one ticket would not add up to the outcomes seen.
            Assert.Equal(_admitted.Count, snapshot.Admitted);
            Assert.Equal(_refused, snapshot.Refused);
            Assert.Equal(Count(TicketOutcome.Completed), snapshot.Completed);
            Assert.Equal(Count(TicketOutcome.Failed), snapshot.Failed);
            Assert.Equal(Count(TicketOutcome.Cancelled), snapshot.Cancelled);
            Assert.Equal(Count(TicketOutcome.TimedOut), snapshot.TimedOut);
            Assert.Equal(_admitted.Count(t => t.State == TicketState.Waiting), snapshot.Waiting);
            Assert.Equal(_admitted.Count(t => t.State == TicketState.Running), snapshot.Running);
        }

        private long Count(TicketOutcome outcome) => _outcomes.Values.Count(o => o == outcome);

        private void CheckPositions(SchedulerSnapshot snapshot, IReadOnlyList<(Ticket Ticket, int Position)> waiting)
        {
            foreach (var model in snapshot.Models)
            {
                var queue = waiting.Where(w => w.Ticket.Model == model.Model).ToList();
                Assert.Equal(model.Waiting, queue.Count);
                Assert.Equal(Enumerable.Range(1, queue.Count), queue.Select(w => w.Position));
                foreach (var entry in queue)
                {
                    var place = _scheduler.GetPlace(entry.Ticket);
                    Assert.NotNull(place);
                    Assert.Equal(entry.Position, place.Value.Position);
                    Assert.Equal(queue.Count, place.Value.QueueLength);
                    Assert.True(place.Value.EstimatedWait >= TimeSpan.Zero);
                }
            }

            var listed = waiting.Select(w => w.Ticket).ToHashSet();
            Assert.True(listed.SetEquals(_admitted.Where(t => t.State == TicketState.Waiting)), "The listing and the waiting tickets differ.");
        }

        private void CheckFifoWithinOwnerAndModel(IReadOnlyList<(Ticket Ticket, int Position)> waiting)
        {
            // Queued in arrival order...
            foreach (var group in waiting.GroupBy(w => (w.Ticket.Owner, w.Ticket.Model)))
            {
                var sequences = group.Select(w => w.Ticket.Sequence).ToList();
                Assert.Equal(sequences.Order(), sequences);
            }

            // ...and never dispatched ahead of an earlier arrival that still waits.
            foreach (var group in _admitted.GroupBy(t => (t.Owner, t.Model)))
            {
                long oldestWaiting = group.Where(t => t.State == TicketState.Waiting).Select(t => t.Sequence).DefaultIfEmpty(long.MaxValue).Min();
                var overtaker = group.FirstOrDefault(t => t.FirstDispatchedAt is not null && t.Sequence > oldestWaiting);
                Assert.True(overtaker is null, $"{overtaker} ran before an older ticket of its owner that still waits.");
            }
        }
    }
}
