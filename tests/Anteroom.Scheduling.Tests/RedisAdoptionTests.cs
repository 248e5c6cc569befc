using Anteroom.Scheduling.Redis;
using Anteroom.Scheduling.Tests.Contract;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests;

/// <summary>
/// A waiting ticket outlives the replica that admitted it by its <see cref="TicketRequest.HolderGrace"/>: it keeps its
/// place as an orphan, is passed over by dispatch while no replica holds it, runs on the replica that adopts it, and
/// ends cancelled when nobody adopts it in time. Replicas on one prefix and one fake clock; a replica dies by being
/// disposed (its heartbeat stops, nothing is ended) and letting its lease run out.
/// </summary>
public sealed class RedisAdoptionTests(RedisFixture redis) : IClassFixture<RedisFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);

    // Real time, not the fake clock: only reached when a replica never ends a wait it should have ended.
    private static readonly TimeSpan Hung = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new();
    private readonly string _prefix = RedisFixture.NewPrefix();
    private readonly List<RedisRequestQueue> _open = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var queue in _open)
        {
            await queue.DisposeAsync();
        }
    }

    [Fact]
    public async Task AWaitingTicketOfAReplicaThatDies_KeepsItsPlace_AndRunsOnTheReplicaThatAdoptsIt()
    {
        var (a, b) = Replicas(slots: 1);
        var (_, running) = await HoldAsync(a, "a-run", "alice");
        var (orphan, _) = await HoldAsync(b, "b-wait", "bob", Grace);
        var (_, behind) = await HoldAsync(a, "a-next", "carol");

        await KillAsync(b, survivor: a);

        Assert.Equal((1, 2), Place(await a.GetPlaceAsync("b-wait")));
        var adopted = await a.AdoptAsync("b-wait");
        Assert.NotNull(adopted);
        Assert.Equal(
            (orphan.Id, orphan.Owner, orphan.Sequence, orphan.ArrivedAt, orphan.Deadline, TicketState.Waiting),
            (adopted.Id, adopted.Owner, adopted.Sequence, adopted.ArrivedAt, adopted.Deadline, adopted.State));
        Assert.Equal((1, 2), Place(await a.GetPlaceAsync("b-wait")));

        (await running).Lease!.Complete(0, 10);

        var dispatch = await a.WaitForSlotAsync(adopted).AsTask().WaitAsync(Hung);
        Assert.NotNull(dispatch.Lease);
        Assert.Same(adopted, dispatch.Lease.Ticket);
        Assert.Equal(TicketState.Running, adopted.State);
        await SettleAsync(a);
        Assert.False(behind.IsCompleted);
        Assert.Equal(["b-wait"], (await a.GetRunningAsync()).Select(r => r.Id));
        Assert.Equal(0, (await a.GetCountsAsync()).Cancelled);
    }

    [Fact]
    public async Task AnOrphanAdoptedWithASlotFree_StartsAtOnce_OnItsAdopter_WhileTheDeadReplicasRunningTicketFails()
    {
        var (a, b) = Replicas(slots: 1);
        await HoldAsync(b, "b-run", "bob", Grace);
        await HoldAsync(b, "b-wait", "carol", Grace);

        await KillAsync(b, survivor: a);

        // The slot is free and the orphan is the only waiting ticket, but nobody holds it to run it.
        var counts = await a.GetCountsAsync();
        Assert.Equal((0, 1, 1), (counts.Running, counts.Waiting, counts.Failed));

        var adopted = await a.AdoptAsync("b-wait");
        Assert.NotNull(adopted);

        var dispatch = await a.WaitForSlotAsync(adopted).AsTask().WaitAsync(Hung);
        Assert.NotNull(dispatch.Lease);
        Assert.Same(adopted, dispatch.Lease.Ticket);
        Assert.Equal(["b-wait"], (await a.GetRunningAsync()).Select(r => r.Id));
    }

    [Fact]
    public async Task AnAdoptedTicketThatRanBefore_KeepsItsAttemptsAndFirstDispatch_AndItsNextRunIsItsNextAttempt()
    {
        var (a, b) = Replicas(slots: 1);
        var (ticket, running) = await HoldAsync(b, "b-1", "bob", Grace);
        var first = (await running).Lease!;
        var firstDispatchedAt = ticket.FirstDispatchedAt;
        // Its backend failed it and is down: it waits again, requeued, when its replica dies.
        await b.SetBackendHealthAsync("gpu", false);
        Assert.True(first.TryRequeue());
        await b.SettleAsync();
        await KillAsync(b, survivor: a);

        var adopted = await a.AdoptAsync("b-1");
        Assert.NotNull(adopted);
        Assert.Equal((TicketState.Waiting, 1, firstDispatchedAt, "gpu"), (adopted.State, adopted.Attempts, adopted.FirstDispatchedAt, adopted.Backend));

        await a.SetBackendHealthAsync("gpu", true);

        var dispatch = await a.WaitForSlotAsync(adopted).AsTask().WaitAsync(Hung);
        Assert.Same(adopted, dispatch.Lease?.Ticket);
        Assert.Equal((2, firstDispatchedAt), (adopted.Attempts, adopted.FirstDispatchedAt));
    }

    [Fact]
    public async Task AnOrphan_IsPassedOverByDispatch_AndAnotherUsersTicketBehindItGetsTheFreeSlot()
    {
        var (a, b) = Replicas(slots: 1);
        var (_, running) = await HoldAsync(a, "a-run", "alice");
        await HoldAsync(b, "b-wait", "bob", Grace);
        var (behind, next) = await HoldAsync(a, "a-next", "carol");
        await KillAsync(b, survivor: a);

        (await running).Lease!.Complete(0, 10);

        var dispatch = await next.WaitAsync(Hung);
        Assert.Same(behind, dispatch.Lease?.Ticket);
        await SettleAsync(a);
        Assert.Equal((1, 1), Place(await a.GetPlaceAsync("b-wait")));
        var counts = await a.GetCountsAsync();
        Assert.Equal((1, 1, 0), (counts.Running, counts.Waiting, counts.Cancelled));
    }

    [Fact]
    public async Task AnOrphanNobodyAdoptsWithinItsGrace_EndsCancelled_AndFreesItsPlace()
    {
        var (a, b) = Replicas(slots: 1);
        await HoldAsync(a, "a-run", "alice");
        await HoldAsync(b, "b-wait", "bob", TimeSpan.FromSeconds(20));
        await HoldAsync(a, "a-next", "carol");
        await KillAsync(b, survivor: a);

        _time.Advance(TimeSpan.FromSeconds(10));
        await SettleAsync(a);
        Assert.Equal((1, 2), Place(await a.GetPlaceAsync("b-wait")));

        _time.Advance(TimeSpan.FromSeconds(10));
        await SettleAsync(a);

        Assert.Null(await a.GetPlaceAsync("b-wait"));
        Assert.Equal((1, 1), Place(await a.GetPlaceAsync("a-next")));
        var counts = await a.GetCountsAsync();
        Assert.Equal((1, 1), (counts.Cancelled, counts.Waiting));
        Assert.Null(await a.AdoptAsync("b-wait"));
    }

    [Fact]
    public async Task AnOrphanWhoseMaxWaitRunsOutFirst_EndsTimedOut()
    {
        var (a, b) = Replicas(slots: 1);
        await HoldAsync(a, "a-run", "alice");
        var admission = await b.AdmitAsync(new TicketRequest { Id = "b-wait", Owner = "bob", Model = "m", MaxWait = TimeSpan.FromSeconds(40), HolderGrace = Grace });
        Assert.True(admission.IsAdmitted);
        await KillAsync(b, survivor: a);
        Assert.Equal(1, (await a.GetCountsAsync()).Waiting);

        _time.Advance(TimeSpan.FromSeconds(10));
        await SettleAsync(a);

        var counts = await a.GetCountsAsync();
        Assert.Equal((1, 0, 0), (counts.TimedOut, counts.Cancelled, counts.Waiting));
        Assert.Null(await a.AdoptAsync("b-wait"));
    }

    [Fact]
    public async Task AWaitingTicketWithoutAGrace_IsCancelledWithItsReplica_AsBefore()
    {
        var (a, b) = Replicas(slots: 1);
        await HoldAsync(a, "a-run", "alice");
        await HoldAsync(b, "b-wait", "bob");

        await KillAsync(b, survivor: a);

        Assert.Null(await a.GetPlaceAsync("b-wait"));
        var counts = await a.GetCountsAsync();
        Assert.Equal((1, 0), (counts.Cancelled, counts.Waiting));
        Assert.Null(await a.AdoptAsync("b-wait"));
    }

    [Fact]
    public async Task Adopt_ReturnsNull_ForTicketsALiveReplicaHolds_RunningOrWaiting_ForAnUnknownId_AndForAnOrphanAdoptedAlready()
    {
        var (a, b) = Replicas(slots: 1);
        var (_, running) = await HoldAsync(b, "b-run", "bob", Grace);
        var (_, waiting) = await HoldAsync(b, "b-wait", "carol", Grace);

        Assert.Null(await a.AdoptAsync("b-run"));
        Assert.Null(await a.AdoptAsync("b-wait"));
        Assert.Null(await a.AdoptAsync("no-such-ticket"));

        // Neither of b's tickets was disturbed: b still runs the one and is given the slot for the other.
        (await running).Lease!.Complete(0, 10);
        Assert.NotNull((await waiting.WaitAsync(Hung)).Lease);

        await HoldAsync(b, "b-wait-2", "dave", Grace);
        await KillAsync(b, survivor: a);
        var c = Open("c");
        Assert.NotNull(await a.AdoptAsync("b-wait-2"));
        Assert.Null(await c.AdoptAsync("b-wait-2"));
    }

    [Fact]
    public async Task AReplicaThatOnlyStalledPastItsLease_SeesItsWaitingTicketEnd_WhileTheTicketWaitsOnForAnAdopter()
    {
        var a = Open("a");
        // On a clock of its own that never moves: its heartbeat stops, as in a long pause, but it still listens.
        var b = Open("b", time: new FakeTimeProvider(_time.GetUtcNow()));
        await HoldAsync(a, "a-run", "alice");
        var (lost, wait) = await HoldAsync(b, "b-wait", "bob", Grace);

        _time.Advance(Lease);
        await SettleAsync(a);

        var dispatch = await wait.WaitAsync(Hung);
        Assert.Null(dispatch.Lease);
        Assert.Equal((TicketState.Ended, TicketOutcome.Cancelled), (lost.State, lost.Outcome));
        Assert.Equal((1, 1), Place(await a.GetPlaceAsync("b-wait")));
        Assert.NotNull(await a.AdoptAsync("b-wait"));
    }

    [Fact]
    public async Task AnOrphan_IsCancelledById_ThroughAnyReplica()
    {
        var (a, b) = Replicas(slots: 1);
        await HoldAsync(a, "a-run", "alice");
        await HoldAsync(b, "b-wait", "bob", Grace);
        await KillAsync(b, survivor: a);

        Assert.True(await a.CancelAsync("b-wait"));

        Assert.Null(await a.GetPlaceAsync("b-wait"));
        Assert.Null(await a.AdoptAsync("b-wait"));
        Assert.Equal(1, (await a.GetCountsAsync()).Cancelled);
    }

    private static (int Position, int QueueLength)? Place(WaitingPlace? place) =>
        place is { } p ? (p.Position, p.QueueLength) : null;

    private (RedisRequestQueue A, RedisRequestQueue B) Replicas(int slots) => (Open("a", slots), Open("b", slots));

    private RedisRequestQueue Open(string replica, int slots = 1, TimeProvider? time = null)
    {
        var queue = new RedisRequestQueue(redis.Connection, _prefix, new SchedulerOptions(), [new BackendDefinition("gpu", slots, ["m"])], time ?? _time, Lease, replica);
        _open.Add(queue);
        return queue;
    }

    /// <summary>A crash: no lease is ended and the heartbeat stops; the survivor's heartbeat finds the lease run out.</summary>
    private async Task KillAsync(RedisRequestQueue replica, RedisRequestQueue survivor)
    {
        await replica.DisposeAsync();
        _open.Remove(replica);
        _time.Advance(Lease);
        await SettleAsync(survivor);
    }

    /// <summary>Admits on <paramref name="queue"/> and starts waiting for the slot there, as the replica's request path does.</summary>
    private static async Task<(Ticket Ticket, Task<Dispatch> Wait)> HoldAsync(RedisRequestQueue queue, string id, string owner, TimeSpan grace = default)
    {
        var admission = await queue.AdmitAsync(new TicketRequest { Id = id, Owner = owner, Model = "m", HolderGrace = grace });
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        return (admission.Ticket, queue.WaitForSlotAsync(admission.Ticket).AsTask());
    }

    private static async Task SettleAsync(RedisRequestQueue replica)
    {
        await replica.SettleAsync();
        await replica.ReceiveAsync();
    }
}
