using CsCheck;

namespace Anteroom.Scheduling.Tests.Contract;

// Invariants a queue must never break, checked after every step of thousands of random operation sequences on
// random backend layouts.
public abstract partial class RequestQueueContractTests
{
    private static readonly string[] ModelNames = ["llama", "qwen", "mistral"];
    private static readonly double[] Tiers = [1, 2, 4];

    private static readonly Gen<Layout> LayoutGen = Gen.Select(
        Gen.Int[2, 3],
        Gen.Select(Gen.Int[1, 4], Gen.Int[1, 7]).Array[1, 3],
        (modelCount, backends) => new Layout(modelCount, [.. backends.Select((b, i) => LayoutBackend(i, b.Item1, b.Item2, modelCount))]));

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
    public Task RandomOperations_UnderFairPolicy_KeepEveryInvariant() =>
        Gen.Select(LayoutGen, OperationGen.Array[1, 60]).SampleAsync(
            run => new Simulation(Harness(SimulationOptions(SchedulingPolicy.Fair), run.Item1.Backends), run.Item1).RunAsync(run.Item2),
            iter: PropertyRuns(2000),
            print: Print);

    [Fact]
    public Task RandomOperations_UnderFifoPolicy_KeepEveryInvariant() =>
        Gen.Select(LayoutGen, OperationGen.Array[1, 60]).SampleAsync(
            run => new Simulation(Harness(SimulationOptions(SchedulingPolicy.Fifo), run.Item1.Backends), run.Item1).RunAsync(run.Item2),
            iter: PropertyRuns(1000),
            print: Print);

    private static SchedulerOptions SimulationOptions(SchedulingPolicy policy) => new()
    {
        Policy = policy,
        MaxQueueLength = 40,
        MaxWaitingPerUser = 12,
        MaxInFlightPerUser = 16,
        MaxWait = TimeSpan.FromMinutes(3),
        Prior = new ServicePrior { TimeToFirstToken = TimeSpan.FromMilliseconds(200), TokensPerSecond = 50, OutputTokens = 100 },
    };

    private static string Print((Layout Layout, Operation[] Operations) run) =>
        $"{run.Layout}{Environment.NewLine}{string.Join(Environment.NewLine, run.Operations.Select(o => o.ToString()))}";

    private static BackendDefinition LayoutBackend(int index, int slots, int modelMask, int modelCount)
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

    /// <summary>
    /// One run: a queue on fake time driven only through the interface, the tickets admitted, the outcomes seen.
    /// What a ticket's state is comes from the queue's listings; how it ended comes from its holder's wait or from
    /// the lease end the run chose, so counters that moved twice or for the wrong outcome do not add up.
    /// </summary>
    private sealed class Simulation(QueueHarness h, Layout layout)
    {
        private readonly List<Ticket> _admitted = [];
        private readonly Dictionary<Ticket, int> _arrival = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<Ticket, TicketOutcome> _outcomes = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<Ticket, TicketOutcome> _leaseEnds = new(ReferenceEqualityComparer.Instance);
        private readonly HashSet<Ticket> _dispatched = new(ReferenceEqualityComparer.Instance);
        private long _refused;
        private int _nextId;

        public async Task RunAsync(Operation[] operations)
        {
            await using (h)
            {
                foreach (var operation in operations)
                {
                    var soleBefore = await SoleWaitingPositionsAsync();
                    await ApplyAsync(operation);
                    await CheckInvariantsAsync(soleBefore);
                }

                await CancelEverythingAsync();
            }
        }

        private async Task ApplyAsync(Operation operation)
        {
            switch (operation)
            {
                case Arrive arrive:
                    await ApplyArriveAsync(arrive);
                    break;
                case Finish finish:
                    var running = await h.RunningAsync();
                    if (running.Count > 0)
                    {
                        var ticket = h.TicketWithId(running[finish.Pick % running.Count].Id);
                        var lease = await h.LeaseOfAsync(ticket);
                        switch (finish.Ending)
                        {
                            case Ending.Complete:
                                lease.Complete(ticket.PromptTokens, finish.OutputTokens);
                                _leaseEnds[ticket] = TicketOutcome.Completed;
                                break;
                            case Ending.Fail:
                                lease.Fail();
                                _leaseEnds[ticket] = TicketOutcome.Failed;
                                break;
                            default:
                                lease.Dispose();
                                _leaseEnds[ticket] = TicketOutcome.Cancelled;
                                break;
                        }
                    }

                    break;
                case FirstToken firstToken:
                    var leases = await h.RunningAsync();
                    if (leases.Count > 0)
                    {
                        (await h.LeaseOfAsync(h.TicketWithId(leases[firstToken.Pick % leases.Count].Id))).MarkFirstToken();
                    }

                    break;
                case CancelTicket cancel:
                    await ApplyCancelAsync(cancel);
                    break;
                case AdvanceTime advance:
                    h.Time.Advance(TimeSpan.FromMilliseconds(advance.Milliseconds));
                    break;
                case ToggleHealth toggle:
                    var name = layout.Backends[toggle.Backend % layout.Backends.Length].Name;
                    bool healthy = (await h.SnapshotAsync()).Backends.Single(b => b.Name == name).Healthy;
                    await h.Queue.SetBackendHealthAsync(name, !healthy);
                    break;
            }
        }

        private async Task ApplyArriveAsync(Arrive arrive)
        {
            var admission = await h.TryAdmitAsync(new TicketRequest
            {
                Id = $"t{++_nextId}",
                Owner = $"user{arrive.User}",
                Model = ModelNames[arrive.Model % layout.ModelCount],
                Weight = arrive.Weight,
                PromptTokens = arrive.PromptTokens,
                MaxOutputTokens = arrive.MaxOutputTokens,
                MaxWait = arrive.MaxWaitSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            });
            if (admission.IsAdmitted)
            {
                _arrival[admission.Ticket] = _admitted.Count;
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

        private async Task<List<(Ticket Ticket, bool Running)>> LiveAsync()
        {
            var running = (await h.RunningAsync()).Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
            var waiting = (await h.WaitingAsync()).Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
            return [.. _admitted.Where(t => !_outcomes.ContainsKey(t) && (running.Contains(t.Id) || waiting.Contains(t.Id)))
                .Select(t => (t, running.Contains(t.Id)))];
        }

        private async Task ApplyCancelAsync(CancelTicket cancel)
        {
            var live = await LiveAsync();
            if (live.Count == 0)
            {
                return;
            }

            var (ticket, wasRunning) = live[cancel.Pick % live.Count];
            Assert.True(await h.Queue.CancelAsync(ticket.Id));
            if (!wasRunning)
            {
                var dispatch = await h.EndOfWaitAsync(ticket);
                Assert.Null(dispatch.Lease);
                Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
                return;
            }

            Assert.True(ticket.Aborted.IsCancellationRequested);
            Assert.Equal(TicketState.Running, await h.StateOfAsync(ticket));
            if (cancel.HolderEndsLease)
            {
                (await h.LeaseOfAsync(ticket)).Dispose();
                _leaseEnds[ticket] = TicketOutcome.Cancelled;
                Assert.Equal(TicketOutcome.Cancelled, ticket.Outcome);
            }
        }

        private async Task CancelEverythingAsync()
        {
            // One at a time, state read afresh: ending a running ticket may dispatch one that was waiting.
            while (await LiveAsync() is [var (ticket, wasRunning), ..])
            {
                Assert.True(await h.Queue.CancelAsync(ticket.Id));
                if (wasRunning)
                {
                    (await h.LeaseOfAsync(ticket)).Dispose();
                    _leaseEnds[ticket] = TicketOutcome.Cancelled;
                }
            }

            await CheckInvariantsAsync([]);
            var snapshot = await h.SnapshotAsync();
            Assert.Equal(0, snapshot.Waiting);
            Assert.Equal(0, snapshot.Running);
            Assert.Equal(snapshot.Admitted, snapshot.Completed + snapshot.Failed + snapshot.Cancelled + snapshot.TimedOut);
            Assert.Equal(_admitted.Count, _outcomes.Count);
        }

        /// <summary>Positions of the tickets that are their owner's only waiting ticket for their model.</summary>
        private async Task<Dictionary<string, int>> SoleWaitingPositionsAsync() =>
            (await h.WaitingAsync())
                .GroupBy(w => (w.Owner, w.Model))
                .Where(g => g.Count() == 1)
                .ToDictionary(g => g.Single().Id, g => g.Single().Position, StringComparer.Ordinal);

        private async Task CheckInvariantsAsync(Dictionary<string, int> soleBefore)
        {
            var snapshot = await h.SnapshotAsync();
            var counts = await h.CountsAsync();
            var running = await h.RunningAsync();
            var waiting = await h.WaitingAsync();

            CheckSlots(snapshot, running);
            CheckWorkConserving(snapshot);
            await CheckOutcomesAsync(snapshot, counts, running, waiting);
            await CheckPositionsAsync(snapshot, waiting);
            CheckFifoWithinOwnerAndModel(waiting);

            foreach (var (id, before) in soleBefore)
            {
                if (await h.Queue.GetPlaceAsync(id) is { } place)
                {
                    Assert.True(place.Position <= before, $"{id} waited alone at position {before} and moved back to {place.Position}.");
                }
            }
        }

        private void CheckSlots(SchedulerSnapshot snapshot, IReadOnlyList<RunningTicket> running)
        {
            Assert.Equal(snapshot.Running, running.Count);
            Assert.Equal(running.Count, running.Select(r => r.Id).Distinct(StringComparer.Ordinal).Count());
            foreach (var backend in snapshot.Backends)
            {
                Assert.InRange(backend.Running, 0, backend.Slots);
                Assert.Equal(backend.Running, running.Count(r => r.Backend == backend.Name));
            }

            foreach (var entry in running)
            {
                var definition = layout.Backends.Single(b => b.Name == entry.Backend);
                Assert.Contains(entry.Model, definition.Models);
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

        private async Task CheckOutcomesAsync(
            SchedulerSnapshot snapshot, QueueCounts counts, IReadOnlyList<RunningTicket> running, IReadOnlyList<WaitingTicket> waiting)
        {
            var runningById = running.ToDictionary(r => r.Id, StringComparer.Ordinal);
            var waitingIds = waiting.Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var ticket in _admitted)
            {
                bool isWaiting = waitingIds.Contains(ticket.Id);
                bool isRunning = runningById.TryGetValue(ticket.Id, out var entry);
                if (_outcomes.TryGetValue(ticket, out var seen))
                {
                    // Ids are never reused within a run, so an ended ticket listed again came back after ending.
                    Assert.False(isWaiting || isRunning, $"{ticket} came back after ending.");
                    Assert.Equal(seen, ticket.Outcome);
                    continue;
                }

                if (isWaiting)
                {
                    Assert.False(isRunning, $"{ticket} is listed as waiting and as running.");
                    Assert.False(h.WaitOf(ticket).IsCompleted, $"{ticket} waits but its holder's wait has ended.");
                    Assert.Null(ticket.Outcome);
                }
                else if (isRunning)
                {
                    var lease = await h.LeaseOfAsync(ticket);
                    Assert.False(lease.IsEnded, $"{ticket} runs on a lease its holder has ended.");
                    Assert.Equal(entry!.Backend, lease.Backend);
                    _dispatched.Add(ticket);
                }
                else
                {
                    var dispatch = await h.EndOfWaitAsync(ticket);
                    TicketOutcome outcome;
                    if (dispatch.Lease is null)
                    {
                        outcome = dispatch.Outcome;
                        Assert.True(outcome is TicketOutcome.Cancelled or TicketOutcome.TimedOut, $"{ticket} left the queue as {outcome}.");
                        Assert.Null(ticket.FirstDispatchedAt);
                    }
                    else
                    {
                        _dispatched.Add(ticket);
                        Assert.True(_leaseEnds.TryGetValue(ticket, out outcome), $"{ticket} stopped running though its holder never ended its lease.");
                    }

                    Assert.Equal(outcome, ticket.Outcome);
                    _outcomes[ticket] = outcome;
                }
            }

            // Counters that moved twice for one ticket would not add up to the outcomes seen.
            Assert.Equal(_admitted.Count, snapshot.Admitted);
            Assert.Equal(_refused, snapshot.Refused);
            Assert.Equal(Count(TicketOutcome.Completed), snapshot.Completed);
            Assert.Equal(Count(TicketOutcome.Failed), snapshot.Failed);
            Assert.Equal(Count(TicketOutcome.Cancelled), snapshot.Cancelled);
            Assert.Equal(Count(TicketOutcome.TimedOut), snapshot.TimedOut);
            Assert.Equal(waiting.Count, snapshot.Waiting);
            Assert.Equal(running.Count, snapshot.Running);
            Assert.Equal(
                (snapshot.Waiting, snapshot.Running, snapshot.Admitted, snapshot.Completed, snapshot.Failed, snapshot.Cancelled, snapshot.TimedOut, snapshot.Refused),
                (counts.Waiting, counts.Running, counts.Admitted, counts.Completed, counts.Failed, counts.Cancelled, counts.TimedOut, counts.Refused));
        }

        private long Count(TicketOutcome outcome) => _outcomes.Values.Count(o => o == outcome);

        private async Task CheckPositionsAsync(SchedulerSnapshot snapshot, IReadOnlyList<WaitingTicket> waiting)
        {
            foreach (var model in snapshot.Models)
            {
                var queue = waiting.Where(w => w.Model == model.Model).ToList();
                Assert.Equal(model.Waiting, queue.Count);
                Assert.Equal(Enumerable.Range(1, queue.Count), queue.Select(w => w.Position));
                foreach (var entry in queue)
                {
                    var place = await h.Queue.GetPlaceAsync(entry.Id);
                    Assert.NotNull(place);
                    Assert.Equal(entry.Position, place.Value.Position);
                    Assert.Equal(queue.Count, place.Value.QueueLength);
                    Assert.True(place.Value.EstimatedWait >= TimeSpan.Zero);
                }
            }

            Assert.Equal(waiting.Count, waiting.Select(w => w.Id).Distinct(StringComparer.Ordinal).Count());
            Assert.All(waiting, w => Assert.False(_outcomes.ContainsKey(h.TicketWithId(w.Id)), $"{w.Id} is listed after ending."));
        }

        private void CheckFifoWithinOwnerAndModel(IReadOnlyList<WaitingTicket> waiting)
        {
            // Queued in arrival order...
            foreach (var group in waiting.GroupBy(w => (w.Owner, w.Model)))
            {
                var arrivals = group.OrderBy(w => w.Position).Select(w => _arrival[h.TicketWithId(w.Id)]).ToList();
                Assert.Equal(arrivals.Order(), arrivals);
            }

            // ...and never dispatched ahead of an earlier arrival that still waits.
            var waitingIds = waiting.Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var group in _admitted.GroupBy(t => (t.Owner, t.Model)))
            {
                int oldestWaiting = group.Where(t => waitingIds.Contains(t.Id)).Select(t => _arrival[t]).DefaultIfEmpty(int.MaxValue).Min();
                var overtaker = group.FirstOrDefault(t => _dispatched.Contains(t) && _arrival[t] > oldestWaiting);
                Assert.True(overtaker is null, $"{overtaker} ran before an older ticket of its owner that still waits.");
            }
        }
    }
}
