using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Simulator.Tests.Support;

/// <summary>
/// A fake clock that tells when a timer is created and for how long, so a test advances time exactly when the
/// simulator waits and never races it.
/// </summary>
internal sealed class ObservedTimeProvider : TimeProvider
{
    private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

    public FakeTimeProvider Fake { get; } = new();

    public override DateTimeOffset GetUtcNow() => Fake.GetUtcNow();

    public override long GetTimestamp() => Fake.GetTimestamp();

    public override long TimestampFrequency => Fake.TimestampFrequency;

    public override TimeZoneInfo LocalTimeZone => Fake.LocalTimeZone;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = Fake.CreateTimer(callback, state, dueTime, period);
        _timers.Writer.TryWrite(dueTime);
        return timer;
    }

    public ValueTask<TimeSpan> NextTimerAsync(CancellationToken cancellationToken) => _timers.Reader.ReadAsync(cancellationToken);

    /// <summary>Waits for the simulator's next timer, checks its length and lets it fire.</summary>
    public async Task ExpectAndAdvanceAsync(TimeSpan expected, CancellationToken cancellationToken)
    {
        Assert.Equal(expected, await NextTimerAsync(cancellationToken));
        Fake.Advance(expected);
    }
}
