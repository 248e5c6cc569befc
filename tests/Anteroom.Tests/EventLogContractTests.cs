using Anteroom.Requests;
using Anteroom.Tests.Shared;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests;

/// <summary>
/// What every <see cref="IEventLog"/> must do, written against the interface alone: it keeps a bounded tail of a
/// request's events, replays them from any id, wakes its followers and tells them when they fell out of it. Each
/// implementation derives a class that says how to open one.
/// </summary>
public abstract class EventLogContractTests
{
    private readonly FakeTimeProvider time = new();

    /// <summary>A new, empty log that keeps at most <paramref name="maxBytes"/>, reading the time from <paramref name="clock"/>.</summary>
    private protected abstract IEventLog Create(long maxBytes, FakeTimeProvider clock);

    private IEventLog NewLog(long maxBytes = long.MaxValue) => Create(maxBytes, time);

    /// <summary>Relayed bytes count exactly their length, which keeps the budgets below easy to read.</summary>
    private static RequestEvent.Relayed Bytes(int count) => new(new byte[count]);

    private static async Task<(List<long> Ids, LogRead Read)> IdsAfterAsync(IEventLog log, long afterId)
    {
        var events = new List<StreamEvent>();
        var read = await log.ReadAfterAsync(afterId, events);
        return ([.. events.Select(e => e.Id)], read);
    }

    [Fact]
    public async Task EventsGetIds1And2AndSoOn_AndAReplayFromAnIdGivesOnlyTheLaterOnes_InOrder()
    {
        var log = NewLog();
        log.Append(new RequestEvent.Queued("req_1", 1, 1, 500));
        log.Append(new RequestEvent.Token("a"));
        log.Append(new RequestEvent.Token("b"));

        var events = new List<StreamEvent>();
        Assert.Equal(LogRead.Open, await log.ReadAfterAsync(1, events));

        Assert.Equal([2, 3], events.Select(e => e.Id));
        Assert.Equal(["a", "b"], events.Select(e => ((RequestEvent.Token)e.Event).Text));
        Assert.Empty((await IdsAfterAsync(log, 3)).Ids);
    }

    [Fact]
    public async Task WithinItsBudget_ItKeepsEveryEvent()
    {
        var log = NewLog(maxBytes: 300);
        for (int i = 0; i < 3; i++)
        {
            log.Append(Bytes(100));
        }

        var (ids, read) = await IdsAfterAsync(log, 0);
        Assert.Equal([1, 2, 3], ids);
        Assert.Equal(LogRead.Open, read);
        Assert.Equal(new LogWindow(1, 3, 300, false), await log.GetWindowAsync());
    }

    [Fact]
    public async Task BeyondItsBudget_ItDropsTheOldestEventsUntilItFits()
    {
        var log = NewLog(maxBytes: 300);
        for (int i = 0; i < 5; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Equal(new LogWindow(3, 5, 300, false), await log.GetWindowAsync());
        Assert.Equal([3, 4, 5], (await IdsAfterAsync(log, 2)).Ids);
    }

    [Fact]
    public async Task AnEventLargerThanTheBudget_IsKeptAlone_SoTheEndCanAlwaysBeRead()
    {
        var log = NewLog(maxBytes: 300);
        var end = new RequestEvent.Error("backend_error", new string('x', 1000), null);
        log.Append(Bytes(100));
        log.Append(end);

        var (ids, read) = await IdsAfterAsync(log, 1);
        Assert.Equal([2], ids);
        Assert.Equal(LogRead.Complete, read);
        Assert.Equal(end.Size, (await log.GetWindowAsync()).BufferedBytes);
    }

    [Fact]
    public async Task AReadAskingForDroppedEvents_IsToldTheyAreDropped_AndGetsNothing()
    {
        var log = NewLog(maxBytes: 200);
        for (int i = 0; i < 4; i++)
        {
            log.Append(Bytes(100));
        }

        var fromStart = await IdsAfterAsync(log, 0);
        Assert.Empty(fromStart.Ids);
        Assert.Equal(LogRead.Dropped, fromStart.Read);
        var inTheGap = await IdsAfterAsync(log, 1);
        Assert.Empty(inTheGap.Ids);
        Assert.Equal(LogRead.Dropped, inTheGap.Read);
        var fromTheOldestKept = await IdsAfterAsync(log, 2);
        Assert.Equal([3, 4], fromTheOldestKept.Ids);
        Assert.Equal(LogRead.Open, fromTheOldestKept.Read);
    }

    [Fact]
    public void ACursorWhoseNextEventIsDropped_IsCancelledAtTheAppendThatDropsIt()
    {
        var log = NewLog(maxBytes: 200);
        using var behind = log.Follow(0);
        log.Append(Bytes(100));
        log.Append(Bytes(100));
        Assert.False(behind.Overran.IsCancellationRequested);

        log.Append(Bytes(100));

        Assert.True(behind.Overran.IsCancellationRequested);
    }

    [Fact]
    public void ACursorThatWasGivenTheDroppedEvents_IsNotCancelled()
    {
        var log = NewLog(maxBytes: 200);
        using var keepingUp = log.Follow(0);
        using var justBehind = log.Follow(0);
        log.Append(Bytes(100));
        log.Append(Bytes(100));
        keepingUp.Position = 2;
        justBehind.Position = 1;

        // Event 1 is dropped: neither reader still needs it.
        log.Append(Bytes(100));
        Assert.False(keepingUp.Overran.IsCancellationRequested);
        Assert.False(justBehind.Overran.IsCancellationRequested);

        // Event 2 is dropped: the reader that has not been given it is cut off; the other is not.
        log.Append(Bytes(100));
        Assert.False(keepingUp.Overran.IsCancellationRequested);
        Assert.True(justBehind.Overran.IsCancellationRequested);
    }

    [Fact]
    public async Task Followers_AreCounted_UntilTheirCursorsAreDisposed()
    {
        var log = NewLog(maxBytes: 100);
        var left = log.Follow(0);
        using var staying = log.Follow(0);
        Assert.Equal(2, await log.CountFollowersAsync());

        left.Dispose();
        log.Append(Bytes(100));
        log.Append(Bytes(100));

        Assert.Equal(1, await log.CountFollowersAsync());
        Assert.Equal(2, (await log.GetWindowAsync()).FirstKeptId);
    }

    [Fact]
    public async Task AnUnboundedLog_KeepsEverything()
    {
        var log = NewLog();
        using var cursor = log.Follow(0);
        for (int i = 0; i < 1000; i++)
        {
            log.Append(Bytes(1000));
        }

        Assert.Equal(1000, (await IdsAfterAsync(log, 0)).Ids.Count);
        Assert.False(cursor.Overran.IsCancellationRequested);
    }

    [Fact]
    public async Task ManyDrops_KeepTheNewestEvents_InTheirOrder()
    {
        var log = NewLog(maxBytes: 1000);
        for (int i = 0; i < 10_000; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Equal(Enumerable.Range(9_991, 10).Select(i => (long)i), (await IdsAfterAsync(log, 9_990)).Ids);
        Assert.Equal(1000, (await log.GetWindowAsync()).BufferedBytes);
    }

    [Fact]
    public async Task AppendingAfterTheEnd_IsRefused_AndTheLogReadsComplete()
    {
        var log = NewLog(maxBytes: 1000);
        log.Append(new RequestEvent.Cancelled("cancelled_by_user"));

        Assert.Throws<InvalidOperationException>(() => log.Append(new RequestEvent.Token("late")));
        Assert.True((await log.GetWindowAsync()).IsComplete);
        Assert.Equal(LogRead.Complete, (await IdsAfterAsync(log, 1)).Read);
    }

    [Fact]
    public async Task AWaitForAnEventThatIsAlreadyThere_OrOnAClosedLog_EndsAtOnce()
    {
        var log = NewLog();
        log.Append(new RequestEvent.Token("a"));
        Assert.True(await log.WaitAfterAsync(0, TimeSpan.FromSeconds(1), CancellationToken.None));

        log.Append(new RequestEvent.Cancelled("cancelled_by_user"));
        Assert.True(await log.WaitAfterAsync(2, TimeSpan.FromSeconds(1), CancellationToken.None));
    }

    [Fact]
    public async Task AWaitForTheNextEvent_EndsWhenItIsAppended()
    {
        var log = NewLog();
        log.Append(new RequestEvent.Token("a"));
        var waiting = log.WaitAfterAsync(1, TimeSpan.FromSeconds(15), CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);

        log.Append(new RequestEvent.Token("b"));

        Assert.True(await waiting);
    }

    [Fact]
    public async Task AWaitWithNothingAppended_EndsFalseWhenItsTimeoutHasPassed()
    {
        var log = NewLog();
        var waiting = log.WaitAfterAsync(0, TimeSpan.FromSeconds(15), CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.False(waiting.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));

        Assert.False(await waiting);
    }

    [Fact]
    public async Task AWait_IsCancelledByItsToken()
    {
        var log = NewLog();
        using var leaving = new CancellationTokenSource();
        var waiting = log.WaitAfterAsync(0, TimeSpan.FromSeconds(15), leaving.Token).AsTask();

        await leaving.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }
}

/// <summary>The event-log contract, run against the in-process log.</summary>
public sealed class InProcessEventLogContractTests : EventLogContractTests
{
    private protected override IEventLog Create(long maxBytes, FakeTimeProvider clock) => new InProcessEventLog(maxBytes, clock);
}

/// <summary>The event-log contract, run against the log of a request this replica runs, mirrored to a real Redis.</summary>
public sealed class RedisEventLogContractTests(RedisFixture redis) : EventLogContractTests, IClassFixture<RedisFixture>
{
    private protected override IEventLog Create(long maxBytes, FakeTimeProvider clock) =>
        new RedisEventLogFactory(redis.Connection, RedisFixture.NewPrefix(), TimeSpan.FromMinutes(5), clock).Create("req_1", maxBytes);
}

public sealed class RequestEventSizeTests
{
    [Fact]
    public void AToken_CountsItsTextInUtf8_AndASmallOverhead()
    {
        var ascii = new RequestEvent.Token("abcd");
        var accented = new RequestEvent.Token("éééé");

        Assert.Equal(4, accented.Size - ascii.Size);
        Assert.InRange(ascii.Size - 4, 1, 64);
    }
}
