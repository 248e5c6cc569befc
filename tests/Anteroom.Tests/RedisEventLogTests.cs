using Anteroom.Requests;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Anteroom.Tests;

/// <summary>A request's log written on one replica and read on another through the same Redis.</summary>
public sealed class RedisEventLogTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private readonly FakeTimeProvider time = new();
    private readonly string prefix = RedisFixture.NewPrefix();

    private RedisEventLogFactory Factory(IConnectionMultiplexer connection) => new(connection, prefix, TimeSpan.FromSeconds(90), time);

    private static async Task<List<StreamEvent>> ReadAsync(IEventLog log, long afterId, LogRead expected)
    {
        var events = new List<StreamEvent>();
        Assert.Equal(expected, await log.ReadAfterAsync(afterId, events));
        return events;
    }

    [Fact]
    public async Task ASecondFactory_ReadsALogTheFirstWrote_ResumingAfterAnId()
    {
        await using var otherConnection = await redis.ConnectAsync();
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_a", long.MaxValue);
        writer.Append(new RequestEvent.Queued("req_a", 1, 1, 500));
        writer.Append(new RequestEvent.Started("req_a", "gpu", "m", 5, 1));
        writer.Append(new RequestEvent.Token("Hel"));
        writer.Append(new RequestEvent.Token("lo"));
        await writer.FlushAsync();

        var reader = await Factory(otherConnection).OpenAsync("req_a");

        Assert.NotNull(reader);
        var rest = await ReadAsync(reader, 2, LogRead.Open);
        Assert.Equal([3, 4], rest.Select(e => e.Id));
        Assert.Equal("Hello", string.Concat(rest.Select(e => ((RequestEvent.Token)e.Event).Text)));

        writer.Append(new RequestEvent.Cancelled("cancelled_by_user"));
        await writer.FlushAsync();
        var end = await ReadAsync(reader, 4, LogRead.Complete);
        Assert.Equal(new StreamEvent(5, new RequestEvent.Cancelled("cancelled_by_user")), Assert.Single(end));
        Assert.Equal(new LogWindow(1, 5, (await writer.GetWindowAsync()).BufferedBytes, true), await reader.GetWindowAsync());
    }

    [Fact]
    public async Task ALogTakenOver_GoesOnWithTheNextIds_AndItsFormerWriterCanNoLongerOverwriteIt()
    {
        await using var otherConnection = await redis.ConnectAsync();
        var former = (RedisEventLog)Factory(redis.Connection).Create("req_t", long.MaxValue);
        former.Append(new RequestEvent.Queued("req_t", 2, 2, 500));
        former.Append(new RequestEvent.Queued("req_t", 1, 2, 250));
        await former.FlushAsync();

        var taken = (RedisEventLog)(await Factory(otherConnection).TakeOverAsync("req_t", long.MaxValue))!;
        taken.Append(new RequestEvent.Started("req_t", "gpu", "m", 700, 1));
        await taken.FlushAsync();
        // The former writer only stalled: what it appends now stays with it.
        former.Append(new RequestEvent.Cancelled("client_disconnected"));
        await former.FlushAsync();
        taken.Append(new RequestEvent.Token("Hi"));
        taken.Append(new RequestEvent.Done("stop", new Backends.GenerationUsage(3, 1), new TimingsBody(700, 10, 20, 720, null)));
        await taken.FlushAsync();

        var reader = await Factory(redis.Connection).OpenAsync("req_t");
        var all = await ReadAsync(reader!, 0, LogRead.Complete);
        Assert.Equal([1, 2, 3, 4, 5], all.Select(e => e.Id));
        Assert.Equal(["queued", "queued", "started", "token", "done"], all.Select(e => e.Event.Name));
        Assert.Equal(new LogWindow(1, 5, (await taken.GetWindowAsync()).BufferedBytes, true), await taken.GetWindowAsync());
    }

    [Fact]
    public async Task ALogWhoseWriterIsGone_IsEndedOnce_AndALogAlreadyClosedIsLeftAsItIs()
    {
        var gone = (RedisEventLog)Factory(redis.Connection).Create("req_g", long.MaxValue);
        gone.Append(new RequestEvent.Started("req_g", "gpu", "m", 5, 1));
        await gone.FlushAsync();
        var factory = Factory(redis.Connection);

        await factory.CloseAbandonedAsync("req_g", new RequestEvent.Error("replica_lost", "gone", null));
        await factory.CloseAbandonedAsync("req_g", new RequestEvent.Error("replica_lost", "gone again", null));

        var all = await ReadAsync((await factory.OpenAsync("req_g"))!, 0, LogRead.Complete);
        Assert.Equal(["started", "error"], all.Select(e => e.Event.Name));
        Assert.Equal("gone", ((RequestEvent.Error)all[1].Event).Message);
    }

    [Fact]
    public async Task ALogNobodyWrote_IsNotFound_AndTheInProcessFactoryFindsNone()
    {
        Assert.Null(await Factory(redis.Connection).OpenAsync("req_nobody"));

        var inProcess = new InProcessEventLogFactory(time);
        inProcess.Create("req_here", 1000).Append(new RequestEvent.Token("a"));
        Assert.Null(await inProcess.OpenAsync("req_here"));
    }

    [Fact]
    public async Task TheStream_KeepsTheSameWindowAsTheWriter_AndAReaderAskingForDroppedEventsIsToldSo()
    {
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_b", maxBytes: 300);
        for (int i = 0; i < 5; i++)
        {
            writer.Append(new RequestEvent.Relayed(new byte[100]));
        }

        await writer.FlushAsync();
        var reader = (await Factory(redis.Connection).OpenAsync("req_b"))!;

        Assert.Equal(300, reader.MaxBytes);
        Assert.Equal(new LogWindow(3, 5, 300, false), await reader.GetWindowAsync());
        Assert.Empty(await ReadAsync(reader, 1, LogRead.Dropped));
        Assert.Equal([3, 4, 5], (await ReadAsync(reader, 2, LogRead.Open)).Select(e => e.Id));
        Assert.Equal(3, await redis.Connection.GetDatabase().StreamLengthAsync($"{prefix}:ev:req_b"));
    }

    [Fact]
    public async Task AWaitOnAnotherReplica_EndsWhenTheWriterAppends_AndAfterItsTimeoutOtherwise()
    {
        await using var otherConnection = await redis.ConnectAsync();
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_c", long.MaxValue);
        writer.Append(new RequestEvent.Token("a"));
        await writer.FlushAsync();
        var reader = (await Factory(otherConnection).OpenAsync("req_c"))!;

        Assert.True(await reader.WaitAfterAsync(0, TimeSpan.FromSeconds(15), CancellationToken.None));
        var waiting = reader.WaitAfterAsync(1, TimeSpan.FromSeconds(15), CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        writer.Append(new RequestEvent.Token("b"));
        Assert.True(await waiting);

        // The timeout counts from the call, however long the wait takes to look at the log over the network.
        var quiet = reader.WaitAfterAsync(2, TimeSpan.FromSeconds(15), CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.False(quiet.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(await quiet.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task FollowersOnBothReplicas_AreCountedTogether()
    {
        await using var otherConnection = await redis.ConnectAsync();
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_d", long.MaxValue);
        using var local = writer.Follow(0);
        await writer.FlushAsync();
        var reader = (await Factory(otherConnection).OpenAsync("req_d"))!;

        // Asked first through the reader's own connection, which sends its commands in order: the follow is in.
        var remote = reader.Follow(0);
        Assert.Equal(2, await reader.CountFollowersAsync());
        Assert.Equal(2, await writer.CountFollowersAsync());

        remote.Dispose();
        Assert.Equal(1, await reader.CountFollowersAsync());
        Assert.Equal(1, await writer.CountFollowersAsync());
    }

    [Fact]
    public async Task AFollowerOnAnotherReplica_IsCutOffWhenItsNextEventIsDropped()
    {
        await using var otherConnection = await redis.ConnectAsync();
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_e", maxBytes: 200);
        writer.Append(new RequestEvent.Relayed(new byte[100]));
        await writer.FlushAsync();
        var reader = (await Factory(otherConnection).OpenAsync("req_e"))!;
        using var behind = reader.Follow(0);
        var cutOff = new TaskCompletionSource();
        using var registration = behind.Overran.Register(cutOff.SetResult);
        // Once a wait has ended through the channel, the follower's subscription is in place too.
        var waiting = reader.WaitAfterAsync(1, TimeSpan.FromSeconds(15), CancellationToken.None).AsTask();
        writer.Append(new RequestEvent.Relayed(new byte[100]));
        Assert.True(await waiting);
        Assert.False(behind.Overran.IsCancellationRequested);

        writer.Append(new RequestEvent.Relayed(new byte[100]));

        await cutOff.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task AClosedLog_ExpiresAfterTheRetainWindow_AndAnOpenOneAfterADay()
    {
        var writer = (RedisEventLog)Factory(redis.Connection).Create("req_f", long.MaxValue);
        writer.Append(new RequestEvent.Token("a"));
        await writer.FlushAsync();
        var database = redis.Connection.GetDatabase();
        Assert.InRange((await database.KeyTimeToLiveAsync($"{prefix}:ev:req_f"))!.Value, TimeSpan.FromHours(23), TimeSpan.FromHours(24));

        writer.Append(new RequestEvent.Cancelled("cancelled_by_user"));
        await writer.FlushAsync();

        foreach (var key in new RedisKey[] { $"{prefix}:ev:req_f", $"{prefix}:ev:req_f:m" })
        {
            Assert.InRange((await database.KeyTimeToLiveAsync(key))!.Value, TimeSpan.FromSeconds(80), TimeSpan.FromSeconds(90));
        }
    }
}
