using Anteroom.Requests;

namespace Anteroom.Tests;

/// <summary>The event log keeps a bounded tail of a request's events and tells its readers when they fell out of it.</summary>
public sealed class EventLogTests
{
    /// <summary>Relayed bytes count exactly their length, which keeps the budgets below easy to read.</summary>
    private static RequestEvent.Relayed Bytes(int count) => new(new byte[count]);

    private static List<long> IdsAfter(EventLog log, long afterId, out LogRead read)
    {
        var events = new List<StreamEvent>();
        read = log.CopyAfter(afterId, events, out _);
        return [.. events.Select(e => e.Id)];
    }

    [Fact]
    public void WithinItsBudget_ItKeepsEveryEvent()
    {
        var log = new EventLog(maxBytes: 300);
        for (int i = 0; i < 3; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Equal([1, 2, 3], IdsAfter(log, 0, out var read));
        Assert.Equal(LogRead.Open, read);
        Assert.Equal((1, 300), (log.FirstKeptId, log.BufferedBytes));
    }

    [Fact]
    public void BeyondItsBudget_ItDropsTheOldestEventsUntilItFits()
    {
        var log = new EventLog(maxBytes: 300);
        for (int i = 0; i < 5; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Equal(3, log.FirstKeptId);
        Assert.Equal(300, log.BufferedBytes);
        Assert.Equal([3, 4, 5], IdsAfter(log, 2, out _));
        Assert.Equal(5, log.LastId);
    }

    [Fact]
    public void AnEventLargerThanTheBudget_IsKeptAlone_SoTheEndCanAlwaysBeRead()
    {
        var log = new EventLog(maxBytes: 300);
        var end = new RequestEvent.Error("backend_error", new string('x', 1000), null);
        log.Append(Bytes(100));
        log.Append(end);

        Assert.Equal([2], IdsAfter(log, 1, out var read));
        Assert.Equal(LogRead.Complete, read);
        Assert.Equal(end.Size, log.BufferedBytes);
    }

    [Fact]
    public void AReadAskingForDroppedEvents_IsToldTheyAreDropped_AndGetsNothing()
    {
        var log = new EventLog(maxBytes: 200);
        for (int i = 0; i < 4; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Empty(IdsAfter(log, 0, out var fromStart));
        Assert.Equal(LogRead.Dropped, fromStart);
        Assert.Empty(IdsAfter(log, 1, out var inTheGap));
        Assert.Equal(LogRead.Dropped, inTheGap);
        Assert.Equal([3, 4], IdsAfter(log, 2, out var fromTheOldestKept));
        Assert.Equal(LogRead.Open, fromTheOldestKept);
    }

    [Fact]
    public void ACursorWhoseNextEventIsDropped_IsCancelledAtTheAppendThatDropsIt()
    {
        var log = new EventLog(maxBytes: 200);
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
        var log = new EventLog(maxBytes: 200);
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
    public void ACursorThatLeft_IsNoLongerWatched()
    {
        var log = new EventLog(maxBytes: 100);
        var left = log.Follow(0);
        left.Dispose();

        log.Append(Bytes(100));
        log.Append(Bytes(100));

        Assert.Equal(2, log.FirstKeptId);
    }

    [Fact]
    public void AnUnboundedLog_KeepsEverything()
    {
        var log = new EventLog();
        using var cursor = log.Follow(0);
        for (int i = 0; i < 1000; i++)
        {
            log.Append(Bytes(1000));
        }

        Assert.Equal(1000, IdsAfter(log, 0, out _).Count);
        Assert.False(cursor.Overran.IsCancellationRequested);
    }

    [Fact]
    public void ManyDrops_CompactTheKeptEvents_WithoutLosingTheirOrder()
    {
        var log = new EventLog(maxBytes: 1000);
        for (int i = 0; i < 10_000; i++)
        {
            log.Append(Bytes(100));
        }

        Assert.Equal(Enumerable.Range(9_991, 10).Select(i => (long)i), IdsAfter(log, 9_990, out _));
        Assert.Equal(1000, log.BufferedBytes);
    }

    [Fact]
    public void AppendingAfterTheEnd_IsRefused()
    {
        var log = new EventLog(maxBytes: 1000);
        log.Append(new RequestEvent.Cancelled("cancelled_by_user"));

        Assert.Throws<InvalidOperationException>(() => log.Append(new RequestEvent.Token("late")));
        Assert.True(log.IsComplete);
    }

    [Fact]
    public void AToken_CountsItsTextInUtf8_AndASmallOverhead()
    {
        var ascii = new RequestEvent.Token("abcd");
        var accented = new RequestEvent.Token("éééé");

        Assert.Equal(4, accented.Size - ascii.Size);
        Assert.InRange(ascii.Size - 4, 1, 64);
    }
}
