using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;

namespace Anteroom.Tests.Replicas;

/// <summary>What one replica's registry tells another about the requests it runs.</summary>
public sealed class RedisRequestRegistryTests(RedisFixture redis) : IClassFixture<RedisFixture>, IAsyncDisposable
{
    private readonly string _prefix = RedisFixture.NewPrefix();
    private readonly List<RedisRequestRegistry> _made = [];
    private readonly Microsoft.Extensions.Time.Testing.FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly IRequestQueue _queue = RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], TimeProvider.System);

    [Fact]
    public async Task ARequestAddedOnOneReplica_IsFoundOnAnother_ByItsOwnerAndAnAdminOnly()
    {
        var here = Registry("a");
        var there = Registry("b");
        var alice = User("alice");
        var request = await AddAsync(here, alice, grace: TimeSpan.FromSeconds(30));

        var found = await there.FindElsewhereAsync(request.Id, alice);
        var byAdmin = await there.FindElsewhereAsync(request.Id, User("root", admin: true));

        Assert.NotNull(found);
        Assert.Equal(("user:alice", "m", "a", true), (found.Owner, found.Model, found.Replica, found.ReplicaAlive));
        Assert.Null(found.Ending);
        Assert.Equal("Hello?", found.Adoption!.Generation.Messages.Single().Content);
        Assert.NotNull(byAdmin);
        Assert.Null(await there.FindElsewhereAsync(request.Id, User("bob")));
        // Its own replica has it in memory, not elsewhere.
        Assert.Null(await here.FindElsewhereAsync(request.Id, alice));
        Assert.Same(request, await here.FindAsync(request.Id, alice));
    }

    [Fact]
    public async Task OnlyARequestThatMayBeResumed_CarriesWhatAnotherReplicaNeedsToTakeItOver()
    {
        var here = Registry("a");
        var there = Registry("b");
        var alice = User("alice");
        var withGrace = await AddAsync(here, alice, grace: TimeSpan.FromSeconds(30));
        var withoutGrace = await AddAsync(here, alice, grace: TimeSpan.Zero);

        Assert.NotNull((await there.FindElsewhereAsync(withGrace.Id, alice))!.Adoption);
        Assert.Null((await there.FindElsewhereAsync(withoutGrace.Id, alice))!.Adoption);
    }

    [Fact]
    public async Task HowARequestEnded_IsRecordedForEveryOtherReplica()
    {
        var here = Registry("a");
        var there = Registry("b");
        var alice = User("alice");
        // Takes the one slot, so the request waits and its cancel ends it at once.
        await _queue.AdmitAsync(new TicketRequest { Id = IRequestRegistry.NewId(), Owner = "user:bob", Model = "m" });
        var request = await AddAsync(here, alice, grace: TimeSpan.Zero);
        Assert.True(await _queue.CancelAsync(request.Id));
        request.End(new RequestEvent.Cancelled("cancelled_by_user"));
        request.Publish();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        SharedRequest? found;
        // The ending is recorded behind the request's end, without its publisher waiting: look until it is there.
        while ((found = await there.FindElsewhereAsync(request.Id, alice, timeout.Token))?.Ending is null)
        {
            await Task.Delay(10, timeout.Token);
        }

        Assert.Equal("cancelled", found.Ending!.State);
        Assert.Equal(1, found.Ending.LastEventId);
        Assert.Null(found.Adoption);
    }

    [Fact]
    public async Task AReplicaWhoseRequestWasTakenOver_CannotEndItForEveryoneElse()
    {
        var stalled = Registry("a");
        var adopter = Registry("b");
        var other = Registry("c");
        var alice = User("alice");
        await _queue.AdmitAsync(new TicketRequest { Id = IRequestRegistry.NewId(), Owner = "user:bob", Model = "m" });
        var request = await AddAsync(stalled, alice, grace: TimeSpan.FromSeconds(30));
        // Taken over: the adopter records the same request as its own.
        var taken = new LiveRequest(request.Ticket, request.Arrival, _time);
        await adopter.AddAsync(taken);
        await _queue.CancelAsync(request.Id);
        request.End(new RequestEvent.Cancelled("cancelled"));
        request.Publish();
        // Written behind the stalled replica's ending, on the same connection: read after it.
        await redis.Connection.GetDatabase().PingAsync();
        await Task.Yield();

        var found = await other.FindElsewhereAsync(request.Id, alice);

        Assert.Equal("b", found!.Replica);
        Assert.Null(found.Ending);
    }

    [Theory]
    [InlineData("by:user:alice")]
    [InlineData("live:a")]
    [InlineData("req_NOTHEX00000000000000000000000000")]
    public async Task AnIdThatIsNoRequestId_IsFoundByNobody_WhateverKeyItWouldName(string id)
    {
        var here = Registry("a");
        await AddAsync(here, User("alice"), TimeSpan.Zero);

        Assert.Null(await Registry("b").FindElsewhereAsync(id, User("root", admin: true)));
    }

    [Fact]
    public async Task AStopAskedOfAnotherReplica_StopsTheRequestWhereItRuns_WithTheReasonGiven()
    {
        var here = Registry("a");
        var there = Registry("b");
        var alice = User("alice");
        var request = await AddAsync(here, alice, grace: TimeSpan.Zero);
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = request.Stopping.Register(stopped.SetResult);
        var shared = await there.FindElsewhereAsync(request.Id, alice);

        Assert.True(await there.StopElsewhereAsync(shared!, "cancelled_by_user"));
        await stopped.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("cancelled_by_user", request.StopReason);
    }

    [Fact]
    public async Task AStopForAReplicaThatIsNotThere_IsHeardByNobody()
    {
        var there = Registry("b");
        var gone = new SharedRequest("req_gone", "user:alice", "m", "replica-that-died", DateTimeOffset.UnixEpoch);

        Assert.False(await there.StopElsewhereAsync(gone, "cancelled_by_user"));
    }

    [Fact]
    public async Task AnOwnersRequestsOnOtherReplicas_AreListedNewestFirst_WithoutAnyoneElses()
    {
        var a = Registry("a");
        var b = Registry("b");
        var c = Registry("c");
        var alice = User("alice");
        var first = await AddAsync(a, alice, TimeSpan.Zero);
        _time.Advance(TimeSpan.FromSeconds(1));
        var second = await AddAsync(b, alice, TimeSpan.Zero);
        await AddAsync(a, User("bob"), TimeSpan.Zero);

        var listed = await c.OwnedElsewhereAsync("user:alice");
        var fromA = await a.OwnedElsewhereAsync("user:alice");

        Assert.Equal([second.Id, first.Id], listed.Select(r => r.Id));
        Assert.Equal([second.Id], fromA.Select(r => r.Id));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var registry in _made)
        {
            await registry.DisposeAsync();
        }
    }

    private static Caller User(string name, bool admin = false) =>
        new("user:" + name, name, TierOptions.DefaultName, new TierOptions(), null, admin, false);

    private RedisRequestRegistry Registry(string replica)
    {
        var registry = new RedisRequestRegistry(
            redis.Connection, _prefix, replica, TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5), TimeProvider.System, NullLogger<RedisRequestRegistry>.Instance);
        _made.Add(registry);
        return registry;
    }

    private async Task<LiveRequest> AddAsync(RedisRequestRegistry registry, Caller caller, TimeSpan grace)
    {
        var admission = await _queue.AdmitAsync(new TicketRequest { Id = IRequestRegistry.NewId(), Owner = caller.Owner, Model = "m" });
        var generation = new GenerationRequest { Model = "m", Messages = [new ChatMessage("user", "Hello?")] };
        var request = new LiveRequest(admission.Ticket!, new Arrival(caller, generation) { ReconnectGrace = grace }, _time);
        await registry.AddAsync(request);
        return request;
    }
}
