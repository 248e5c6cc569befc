using Anteroom.Limits;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Limits;

public sealed class TokenBucketTests
{
    private readonly FakeTimeProvider time = new();

    private DateTimeOffset Now => time.GetUtcNow();

    private TokenBucket Drained(long capacity)
    {
        var bucket = new TokenBucket(capacity, Now);
        Assert.True(bucket.TryTake(capacity, Now, out _));
        return bucket;
    }

    [Fact]
    public void StartsFull()
    {
        var bucket = new TokenBucket(60, Now);

        Assert.Equal(60, bucket.Level(Now));
        Assert.True(bucket.IsFull(Now));
        Assert.Equal(TimeSpan.Zero, bucket.UntilFull(Now));
    }

    [Fact]
    public void RefillsContinuously_HalfTheCapacityInHalfAMinute()
    {
        var bucket = Drained(60);

        time.Advance(TimeSpan.FromSeconds(30));

        Assert.Equal(30, bucket.Level(Now));
        Assert.Equal(30, bucket.Remaining(Now));
    }

    [Fact]
    public void NeverRefillsAboveCapacity()
    {
        var bucket = Drained(60);

        time.Advance(TimeSpan.FromHours(1));

        Assert.Equal(60, bucket.Level(Now));
    }

    [Fact]
    public void TryTake_TakesWhatIsThere()
    {
        var bucket = new TokenBucket(60, Now);

        Assert.True(bucket.TryTake(25, Now, out var retryAfter));
        Assert.Equal(TimeSpan.Zero, retryAfter);
        Assert.Equal(35, bucket.Level(Now));
    }

    [Fact]
    public void TryTake_RefusesWithTheExactWait_AndTakesNothing()
    {
        var bucket = Drained(60);

        Assert.False(bucket.TryTake(1, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(1), retryAfter);
        Assert.Equal(0, bucket.Level(Now));

        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(bucket.TryTake(1, Now, out retryAfter));
        Assert.Equal(TimeSpan.FromMilliseconds(1), retryAfter);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(bucket.TryTake(1, Now, out _));
    }

    [Fact]
    public void TryTake_RoundsAnUnevenWaitUpToTheMillisecond_AndWaitingItIsEnough()
    {
        // 7 per minute: one comes back every 60/7 s = 8571.43 ms.
        var bucket = Drained(7);

        Assert.False(bucket.TryTake(1, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromMilliseconds(8572), retryAfter);

        time.Advance(TimeSpan.FromMilliseconds(8571));
        Assert.False(bucket.TryTake(1, Now, out var rest));
        Assert.Equal(TimeSpan.FromMilliseconds(1), rest);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(bucket.TryTake(1, Now, out _));
    }

    [Fact]
    public void TryTake_ReportsAtLeastOneMillisecond()
    {
        var bucket = Drained(60);
        time.Advance(TimeSpan.FromTicks(TimeSpan.TicksPerSecond - 1));

        Assert.False(bucket.TryTake(1, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromMilliseconds(1), retryAfter);
    }

    [Fact]
    public void AnAmountAboveCapacity_RunsFromAFullBucket_AndIsChargedInFull()
    {
        var bucket = new TokenBucket(10, Now);

        Assert.True(bucket.TryTake(25, Now, out _));
        Assert.Equal(-15, bucket.Level(Now));

        // 16 tokens short at 10 per minute.
        Assert.False(bucket.TryTake(1, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(96), retryAfter);
    }

    [Fact]
    public void AnAmountAboveCapacity_WaitsOnlyForAFullBucket()
    {
        var bucket = new TokenBucket(10, Now);
        Assert.True(bucket.TryTake(1, Now, out _));

        Assert.False(bucket.TryTake(25, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(6), retryAfter);

        time.Advance(retryAfter);
        Assert.True(bucket.TryTake(25, Now, out _));
    }

    [Fact]
    public void Adjust_GivesBackUpToCapacity()
    {
        var bucket = new TokenBucket(60, Now);
        Assert.True(bucket.TryTake(10, Now, out _));

        bucket.Adjust(4, Now);
        Assert.Equal(54, bucket.Level(Now));

        bucket.Adjust(100, Now);
        Assert.Equal(60, bucket.Level(Now));
    }

    [Fact]
    public void Adjust_ChargesIntoDebt_WhichDelaysLaterRequests()
    {
        var bucket = Drained(60);

        bucket.Adjust(-30, Now);

        Assert.Equal(-30, bucket.Level(Now));
        Assert.Equal(0, bucket.Remaining(Now));
        Assert.False(bucket.TryTake(1, Now, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(31), retryAfter);

        time.Advance(retryAfter);
        Assert.True(bucket.TryTake(1, Now, out _));
    }

    [Fact]
    public void UntilFull_IsTheTimeToRefillWhatIsMissing()
    {
        var bucket = new TokenBucket(60, Now);
        Assert.True(bucket.TryTake(15, Now, out _));

        Assert.Equal(TimeSpan.FromSeconds(15), bucket.UntilFull(Now));

        bucket.Adjust(-60, Now);
        Assert.Equal(TimeSpan.FromSeconds(75), bucket.UntilFull(Now));

        time.Advance(TimeSpan.FromSeconds(75));
        Assert.Equal(TimeSpan.Zero, bucket.UntilFull(Now));
        Assert.True(bucket.IsFull(Now));
    }

    [Fact]
    public void AClockSteppingBack_GrantsNothing()
    {
        var bucket = Drained(60);
        var later = Now + TimeSpan.FromSeconds(10);
        Assert.Equal(10, bucket.Level(later));

        Assert.Equal(10, bucket.Level(Now));
        Assert.Equal(10, bucket.Level(later));
    }

    [Fact]
    public void Resized_GrantsARaiseAtOnce_CutsToTheNewCapacity_AndKeepsDebt()
    {
        var used = new TokenBucket(60, Now);
        Assert.True(used.TryTake(50, Now, out _));
        Assert.Equal(950, used.Resized(1000, Now).Level(Now));
        Assert.Equal(10, used.Resized(20, Now).Level(Now));

        var full = new TokenBucket(1000, Now);
        Assert.Equal(60, full.Resized(60, Now).Level(Now));

        var inDebt = Drained(60);
        inDebt.Adjust(-30, Now);
        Assert.Equal(-30, inDebt.Resized(10, Now).Level(Now));
    }

    [Fact]
    public void RejectsANonPositiveCapacity()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(0, Now));
    }
}
