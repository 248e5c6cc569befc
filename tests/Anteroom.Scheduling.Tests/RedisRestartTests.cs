using System.Diagnostics;
using Anteroom.Scheduling.Redis;
using Anteroom.Scheduling.Tests.Contract;
using Anteroom.TestServers;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Tests;

/// <summary>
/// The queue when its Redis restarts empty (no persistence) or is out of reach: it makes its store again by itself,
/// ends the tickets the lost store held with an outcome their holders see, and fails fast while Redis is down.
/// </summary>
public sealed class RedisRestartTests(RedisRestartTests.RestartableRedis redis) : IClassFixture<RedisRestartTests.RestartableRedis>, IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    // Real time, not the fake clock: only reached when the queue never ends a wait it should have ended.
    private static readonly TimeSpan Hung = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new();
    private readonly List<RedisRequestQueue> _open = [];

    public async Task InitializeAsync()
    {
        // A test that failed half way may have left Redis down; every test starts with it up.
        if (!redis.Server.IsRunning)
        {
            await redis.StartAgainAsync();
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var queue in _open)
        {
            await queue.DisposeAsync();
        }
    }

    [Fact]
    public async Task AfterRedisRestartsEmpty_AdmissionWorksAgain_OnTheSameQueue()
    {
        var queue = Open();
        await HoldAsync(queue, "a-1", "alice");

        await redis.RestartEmptyAsync();
        var admission = await queue.AdmitAsync(Request("a-2", "alice"));

        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        var counts = await queue.GetCountsAsync();
        Assert.Equal((1, 1), (counts.Admitted, counts.Running));
    }

    [Fact]
    public async Task ATicketWaitingWhenRedisRestartsEmpty_EndsFailed_OnceTheConnectionIsBack()
    {
        var queue = Open();
        await HoldAsync(queue, "a-1", "alice");
        var (waiting, wait) = await HoldAsync(queue, "a-2", "bob");
        Assert.False(wait.IsCompleted);

        await redis.RestartEmptyAsync();

        // Nothing else is asked of the queue: the restored connection alone makes it notice.
        var dispatch = await wait.WaitAsync(Hung);
        Assert.Null(dispatch.Lease);
        Assert.Equal(TicketOutcome.Failed, dispatch.Outcome);
        Assert.Equal((TicketState.Ended, TicketOutcome.Failed), (waiting.State, waiting.Outcome));
    }

    [Fact]
    public async Task ATicketRunningWhenRedisRestartsEmpty_RunsToItsEnd_AndItsLeaseEndLeavesTheNewQueueAlone()
    {
        var queue = Open();
        var (running, dispatched) = await HoldAsync(queue, "a-1", "alice");
        var lease = (await dispatched).Lease!;

        await redis.RestartEmptyAsync();
        var (_, next) = await HoldAsync(queue, "b-1", "bob");
        Assert.NotNull((await next.WaitAsync(Hung)).Lease);
        Assert.False(running.Aborted.IsCancellationRequested);
        lease.Complete(10, 10);
        await queue.SettleAsync();

        Assert.Equal((TicketState.Ended, TicketOutcome.Completed), (running.State, running.Outcome));
        var snapshot = await queue.GetSnapshotAsync();
        Assert.Equal((1, 1, 0, 0), (snapshot.Admitted, snapshot.Running, snapshot.Completed, snapshot.Failed));
        Assert.Equal(["b-1"], (await queue.GetRunningAsync()).Select(r => r.Id));
    }

    [Fact]
    public async Task WhileRedisIsDown_AnAdmissionFailsAtOnceWithAConnectionException_NotAfterTheConnectionsTimeout()
    {
        var queue = Open();
        await HoldAsync(queue, "a-1", "alice");
        await redis.KillAsync();

        var watch = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<RedisConnectionException>(async () => await queue.AdmitAsync(Request("a-2", "alice")));
        watch.Stop();

        Assert.Contains("Redis cannot be reached", failure.Message, StringComparison.Ordinal);
        Assert.True(watch.Elapsed < redis.Timeout / 5, $"It failed after {watch.Elapsed}; the connection's timeout is {redis.Timeout}.");
    }

    [Fact]
    public async Task TwoReplicasRecoveringAtOnce_MakeOneQueueAgain_AndEachEndsItsOwnWaitingTicket()
    {
        string prefix = RedisFixture.NewPrefix();
        var (a, b) = (Open(prefix, "a"), Open(prefix, "b"));
        await HoldAsync(a, "a-1", "alice");
        var (_, aWait) = await HoldAsync(a, "a-2", "alice");
        var (_, bWait) = await HoldAsync(b, "b-1", "bob");

        await redis.RestartEmptyAsync();

        Assert.Equal(TicketOutcome.Failed, (await aWait.WaitAsync(Hung)).Outcome);
        Assert.Equal(TicketOutcome.Failed, (await bWait.WaitAsync(Hung)).Outcome);
        await HoldAsync(a, "a-3", "alice");
        await HoldAsync(b, "b-2", "bob");
        Assert.Equal(2, (await a.GetCountsAsync()).Admitted);
        Assert.Equal(2, (await b.GetCountsAsync()).Admitted);
        Assert.Equal(["b-2"], (await a.GetWaitingAsync()).Select(w => w.Id));
    }

    [Fact]
    public async Task AQueueMadeWhileRedisIsDown_AdmitsOnceRedisIsUp()
    {
        await redis.KillAsync();
        var queue = Open();
        await Assert.ThrowsAsync<RedisConnectionException>(async () => await queue.AdmitAsync(Request("a-1", "alice")));

        await redis.StartAgainAsync();

        var admission = await queue.AdmitAsync(Request("a-2", "alice"));
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
    }

    private static TicketRequest Request(string id, string owner) => new() { Id = id, Owner = owner, Model = "m" };

    private RedisRequestQueue Open() => Open(RedisFixture.NewPrefix(), "a");

    private RedisRequestQueue Open(string prefix, string replica)
    {
        var queue = new RedisRequestQueue(redis.Connection, prefix, new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], _time, Lease, replica);
        _open.Add(queue);
        return queue;
    }

    private static async Task<(Ticket Ticket, Task<Dispatch> Wait)> HoldAsync(RedisRequestQueue queue, string id, string owner)
    {
        var admission = await queue.AdmitAsync(Request(id, owner));
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        return (admission.Ticket, queue.WaitForSlotAsync(admission.Ticket).AsTask());
    }

    /// <summary>A redis-server of this class's own, which its tests kill and start again, and a connection that rides it out.</summary>
    public sealed class RestartableRedis : IAsyncLifetime
    {
        private RedisServer? _server;
        private ConnectionMultiplexer? _connection;

        public RedisServer Server => _server ?? throw new InvalidOperationException("The fixture has not started.");

        public IConnectionMultiplexer Connection => _connection ?? throw new InvalidOperationException("The fixture has not started.");

        /// <summary>How long the connection lets a command wait for Redis before it gives up.</summary>
        public TimeSpan Timeout { get; private set; }

        public async Task InitializeAsync()
        {
            _server = await RedisServer.StartAsync();
            var configuration = ConfigurationOptions.Parse(_server.Configuration);
            // As the gateway connects: never give up, and try again soon after Redis went away.
            configuration.AbortOnConnectFail = false;
            configuration.ReconnectRetryPolicy = new LinearRetry(100);
            Timeout = TimeSpan.FromMilliseconds(configuration.AsyncTimeout);
            _connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        }

        /// <summary>Kills redis-server and completes once the connection knows it is gone.</summary>
        public async Task KillAsync()
        {
            var lost = Signal(handler => Connection.ConnectionFailed += handler, handler => Connection.ConnectionFailed -= handler);
            await Server.KillAsync();
            await lost.WaitAsync(Hung);
        }

        /// <summary>Starts redis-server again, empty, and completes once the connection is restored.</summary>
        public async Task StartAgainAsync()
        {
            var restored = Signal(handler => Connection.ConnectionRestored += handler, handler => Connection.ConnectionRestored -= handler);
            await Server.StartAgainAsync();
            await restored.WaitAsync(Hung);
        }

        /// <summary>A restart without persistence: everything the queue kept in Redis is gone.</summary>
        public async Task RestartEmptyAsync()
        {
            await KillAsync();
            await StartAgainAsync();
        }

        public async Task DisposeAsync()
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync();
            }

            if (_server is not null)
            {
                await _server.DisposeAsync();
            }
        }

        /// <summary>Completes at the next event of the interactive connection.</summary>
        private static Task Signal(Action<EventHandler<ConnectionFailedEventArgs>> add, Action<EventHandler<ConnectionFailedEventArgs>> remove)
        {
            var signalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            EventHandler<ConnectionFailedEventArgs>? handler = null;
            handler = (_, e) =>
            {
                if (e.ConnectionType == ConnectionType.Interactive)
                {
                    remove(handler!);
                    signalled.TrySetResult();
                }
            };
            add(handler);
            return signalled.Task;
        }
    }
}
