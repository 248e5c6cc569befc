using Anteroom.Scheduling.Redis;
using Anteroom.Scheduling.Tests.Contract;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Tests;

/// <summary>
/// Two gateway replicas on one Redis: two queues under the same prefix on one fake clock, each holding the tickets
/// it admitted. What one does to the shared queue reaches the other's holders and waiters.
/// </summary>
public sealed class RedisReplicaTests(RedisFixture redis) : IClassFixture<RedisFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

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
    public async Task TwoReplicas_NeverRunMoreTicketsThanABackendsSlots_BetweenThem()
    {
        var (a, b) = Replicas(Backend(slots: 2));
        var held = new List<(Ticket Ticket, Task<Dispatch> Wait)>();
        for (int i = 0; i < 4; i++)
        {
            held.Add(await HoldAsync(a, $"alice-{i}", "alice"));
            held.Add(await HoldAsync(b, $"bob-{i}", "bob"));
        }

        for (int ended = 0; ended < held.Count; ended++)
        {
            await SettleAsync(a, b);
            var running = new List<SlotLease>();
            foreach (var (_, wait) in held.Where(h => h.Wait.IsCompleted))
            {
                if ((await wait).Lease is { IsEnded: false } lease)
                {
                    running.Add(lease);
                }
            }

            Assert.Equal(Math.Min(2, held.Count - ended), running.Count);
            Assert.Equal(running.Count, (await a.GetCountsAsync()).Running);
            Assert.Equal(running.Count, (await b.GetRunningAsync()).Count);

            running[0].Complete(0, 10);
        }

        await SettleAsync(a, b);
        var snapshot = await b.GetSnapshotAsync();
        Assert.Equal((8, 8, 2), (snapshot.Admitted, snapshot.Completed, snapshot.PeakRunning));
    }

    [Fact]
    public async Task AReplicaThatDies_GivesItsSlotsBack_WhenItsLeaseRunsOut()
    {
        var (a, b) = Replicas(Backend(slots: 2));
        await HoldAsync(b, "b-1", "bob");
        await HoldAsync(b, "b-2", "bob");
        var (waiting, wait) = await HoldAsync(a, "a-1", "alice");

        // A crash: no lease is ended, and the replica's heartbeat stops.
        await b.DisposeAsync();
        _open.Remove(b);
        _time.Advance(Lease - TimeSpan.FromSeconds(10));
        await SettleAsync(a);
        Assert.False(wait.IsCompleted);
        Assert.Equal(2, (await a.GetCountsAsync()).Running);

        _time.Advance(TimeSpan.FromSeconds(10));

        var lease = (await wait.WaitAsync(Hung)).Lease;
        Assert.NotNull(lease);
        Assert.Same(waiting, lease.Ticket);
        await SettleAsync(a);
        var snapshot = await a.GetSnapshotAsync();
        Assert.Equal((1, 2), (snapshot.Running, snapshot.Failed));
        Assert.Equal(["a-1"], (await a.GetRunningAsync()).Select(r => r.Id));
    }

    [Fact]
    public async Task ALiveReplica_KeepsItsSlotsFarPastTheLeaseDuration_ByItsHeartbeat()
    {
        var (a, b) = Replicas(Backend(slots: 1));
        var (_, running) = await HoldAsync(b, "b-1", "bob");
        var (_, wait) = await HoldAsync(a, "a-1", "alice");

        for (int i = 0; i < 12; i++)
        {
            _time.Advance(Lease / 3);
            await SettleAsync(a, b);
        }

        Assert.False(wait.IsCompleted);
        var lease = (await running).Lease!;
        Assert.False(lease.Ticket.Aborted.IsCancellationRequested);
        Assert.Equal(0, (await a.GetSnapshotAsync()).Failed);

        lease.Complete(0, 10);
        Assert.NotNull((await wait.WaitAsync(Hung)).Lease);
    }

    [Fact]
    public async Task ATicketWaitingOnOneReplica_GetsItsSlotThere_WhenTheSlotFreesThroughAnother()
    {
        var (a, b) = Replicas(Backend(slots: 1));
        var (_, running) = await HoldAsync(b, "b-1", "bob");
        var (waiting, wait) = await HoldAsync(a, "a-1", "alice");

        (await running).Lease!.Complete(0, 10);

        var dispatch = await wait.WaitAsync(Hung);
        Assert.NotNull(dispatch.Lease);
        Assert.Same(waiting, dispatch.Lease.Ticket);
        Assert.Equal(TicketState.Running, waiting.State);
        Assert.Equal("gpu", waiting.Backend);
    }

    [Fact]
    public async Task ATicketWaitingOnOneReplica_EndsThere_WhenAnotherCancelsIt()
    {
        var (a, b) = Replicas(Backend(slots: 1));
        await HoldAsync(b, "b-1", "bob");
        var (waiting, wait) = await HoldAsync(a, "a-1", "alice");

        Assert.True(await b.CancelAsync("a-1"));

        var dispatch = await wait.WaitAsync(Hung);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Cancelled, dispatch.Outcome);
        Assert.Equal(TicketOutcome.Cancelled, waiting.Outcome);
    }

    [Fact]
    public async Task ATicketRunningOnOneReplica_IsAbortedThere_WhenAnotherCancelsIt()
    {
        var (a, b) = Replicas(Backend(slots: 1));
        var (ticket, running) = await HoldAsync(a, "a-1", "alice");
        await running;
        var aborted = new TaskCompletionSource();
        using var registration = ticket.Aborted.Register(() => aborted.TrySetResult());

        Assert.True(await b.CancelAsync("a-1"));

        await aborted.Task.WaitAsync(Hung);
        Assert.Equal(TicketState.Running, ticket.State);
    }

    [Fact]
    public async Task WaitForChange_OnOneReplica_CompletesWhenAnotherAdmits()
    {
        var options = new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero };
        var (a, b) = Replicas(options, Backend(slots: 1));
        await SettleAsync(a, b);
        var change = a.WaitForChangeAsync(a.ChangeVersion).AsTask();
        Assert.False(change.IsCompleted);

        await HoldAsync(b, "b-1", "bob");

        await change.WaitAsync(Hung);
    }

    [Fact]
    public async Task PositionsAndEstimates_AreTheSameOnEveryReplica()
    {
        var (a, b) = Replicas(Backend(slots: 1));
        await HoldAsync(a, "a-run", "alice");
        await HoldAsync(b, "b-1", "bob");
        await HoldAsync(a, "a-1", "carol");
        await HoldAsync(b, "b-2", "bob");
        await SettleAsync(a, b);

        foreach (var id in new[] { "b-1", "a-1", "b-2" })
        {
            Assert.Equal(await a.GetPlaceAsync(id), await b.GetPlaceAsync(id));
        }

        Assert.Equal([("b-1", 1), ("a-1", 2), ("b-2", 3)], (await a.GetWaitingAsync()).Select(w => (w.Id, w.Position)));
        Assert.Equal(await a.EstimateWaitAsync("m"), await b.EstimateWaitAsync("m"));
        Assert.Equal(3, (await b.GetPlaceAsync("b-2"))!.Value.Position);
    }

    [Fact]
    public async Task AReplicaGivenOtherBackends_IsRefused()
    {
        var (a, _) = Replicas(Backend(slots: 1));
        await HoldAsync(a, "a-1", "alice");
        var other = Open(new SchedulerOptions(), [new BackendDefinition("gpu", 4, ["m"])], "c");

        var refused = await Assert.ThrowsAsync<RedisServerException>(async () => await other.AdmitAsync(Request("c-1", "carol")));
        Assert.Contains("other backends", refused.Message, StringComparison.Ordinal);
    }

    private static BackendDefinition Backend(int slots) => new("gpu", slots, ["m"]);

    private static TicketRequest Request(string id, string owner) => new() { Id = id, Owner = owner, Model = "m" };

    private (RedisRequestQueue A, RedisRequestQueue B) Replicas(params BackendDefinition[] backends) => Replicas(new SchedulerOptions(), backends);

    private (RedisRequestQueue A, RedisRequestQueue B) Replicas(SchedulerOptions options, params BackendDefinition[] backends) =>
        (Open(options, backends, "a"), Open(options, backends, "b"));

    private RedisRequestQueue Open(SchedulerOptions options, BackendDefinition[] backends, string replica)
    {
        var queue = new RedisRequestQueue(redis.Connection, _prefix, options, backends, _time, Lease, replica);
        _open.Add(queue);
        return queue;
    }

    /// <summary>Admits on <paramref name="queue"/> and starts waiting for the slot there, as the replica's request path does.</summary>
    private static async Task<(Ticket Ticket, Task<Dispatch> Wait)> HoldAsync(RedisRequestQueue queue, string id, string owner)
    {
        var admission = await queue.AdmitAsync(Request(id, owner));
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        return (admission.Ticket, queue.WaitForSlotAsync(admission.Ticket).AsTask());
    }

    /// <summary>Everything each replica started is applied, and everything published to each has been received.</summary>
    private static async Task SettleAsync(params RedisRequestQueue[] replicas)
    {
        foreach (var replica in replicas)
        {
            await replica.SettleAsync();
        }

        foreach (var replica in replicas)
        {
            await replica.ReceiveAsync();
        }
    }
}
