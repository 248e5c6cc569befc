using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests;

/// <summary>
/// What every <see cref="IRequestRegistry"/> must do, written against the interface alone; each implementation
/// derives a class that says how to make one.
/// </summary>
public abstract class RequestRegistryContractTests
{
    private readonly FakeTimeProvider time = new();
    private readonly IRequestQueue queue;
    private readonly IRequestRegistry registry;

    protected RequestRegistryContractTests()
    {
        queue = RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], time);
        registry = Create();
    }

    /// <summary>A new, empty registry.</summary>
    private protected abstract IRequestRegistry Create();

    private static Caller User(string name, bool admin = false) =>
        new("user:" + name, name, TierOptions.DefaultName, new TierOptions(), null, admin, false);

    private async Task<LiveRequest> AddAsync(Caller caller)
    {
        var admission = await queue.AdmitAsync(new TicketRequest { Id = IRequestRegistry.NewId(), Owner = caller.Owner, Model = "m" });
        var request = new LiveRequest(admission.Ticket!, new Arrival(caller, new GenerationRequest { Model = "m", Messages = [] }), time);
        await registry.AddAsync(request);
        return request;
    }

    private void End(LiveRequest request) => request.End(new RequestEvent.Cancelled("cancelled_by_user"));

    [Fact]
    public async Task ARequest_IsFoundByItsOwnerAndByAnAdmin_AndByNobodyElse()
    {
        var alice = User("alice");
        var request = await AddAsync(alice);

        Assert.Same(request, await registry.FindAsync(request.Id, alice));
        Assert.Same(request, await registry.FindAsync(request.Id, User("root", admin: true)));
        Assert.Null(await registry.FindAsync(request.Id, User("bob")));
        Assert.Same(request, await registry.GetAsync(request.Id));
    }

    [Fact]
    public async Task AnUnknownId_IsFoundByNobody()
    {
        Assert.Null(await registry.FindAsync("req_unknown", User("root", admin: true)));
        Assert.Null(await registry.GetAsync("req_unknown"));
    }

    [Fact]
    public async Task AnOwnersRequests_AreListedNewestFirst_WithoutAnyoneElses()
    {
        var alice = User("alice");
        var first = await AddAsync(alice);
        time.Advance(TimeSpan.FromSeconds(1));
        await AddAsync(User("bob"));
        time.Advance(TimeSpan.FromSeconds(1));
        var second = await AddAsync(alice);

        Assert.Equal([second, first], await registry.OwnedByAsync(alice.Owner));
        Assert.Empty(await registry.OwnedByAsync("user:nobody"));
    }

    [Fact]
    public async Task StopAll_StopsEveryRequestStillRunning_WithTheReason_AndLeavesEndedOnesAlone()
    {
        var running = await AddAsync(User("alice"));
        var ended = await AddAsync(User("bob"));
        End(ended);

        await registry.StopAllAsync("server_shutting_down");

        Assert.True(running.Stopping.IsCancellationRequested);
        Assert.Equal("server_shutting_down", running.StopReason);
        Assert.False(ended.Stopping.IsCancellationRequested);
    }

    [Fact]
    public async Task Sweep_ForgetsOnlyRequestsThatEndedBeforeTheCutOff()
    {
        var alice = User("alice");
        var endedEarly = await AddAsync(alice);
        End(endedEarly);
        time.Advance(TimeSpan.FromMinutes(1));
        var endedLate = await AddAsync(alice);
        End(endedLate);
        var running = await AddAsync(alice);

        Assert.Equal(1, await registry.SweepAsync(time.GetUtcNow() - TimeSpan.FromSeconds(30)));

        Assert.Null(await registry.GetAsync(endedEarly.Id));
        Assert.Same(endedLate, await registry.GetAsync(endedLate.Id));
        Assert.Same(running, await registry.GetAsync(running.Id));
        Assert.Equal(0, await registry.SweepAsync(time.GetUtcNow() - TimeSpan.FromSeconds(30)));
    }
}

/// <summary>The request-registry contract, run against the in-process registry.</summary>
public sealed class InProcessRequestRegistryContractTests : RequestRegistryContractTests
{
    private protected override IRequestRegistry Create() => new InProcessRequestRegistry();
}

/// <summary>The request-registry contract, run against the registry of a replica in Redis mode.</summary>
public sealed class RedisRequestRegistryContractTests(Shared.RedisFixture redis) : RequestRegistryContractTests, IClassFixture<Shared.RedisFixture>, IAsyncDisposable
{
    private readonly List<RedisRequestRegistry> _made = [];

    private protected override IRequestRegistry Create()
    {
        var registry = new RedisRequestRegistry(
            redis.Connection, Shared.RedisFixture.NewPrefix(), "replica-a", TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(5),
            TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<RedisRequestRegistry>.Instance);
        _made.Add(registry);
        return registry;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var registry in _made)
        {
            await registry.DisposeAsync();
        }
    }
}
