namespace Anteroom.Scheduling;

/// <summary>
/// The <see cref="Scheduler"/>'s counters and its window of recent waits. Changed and read under the scheduler's
/// lock; everything that costs more than copying (sorting the waits for percentiles) happens after it is released.
/// </summary>
internal sealed class QueueStatistics
{
    private readonly long[] _refusedByReason = new long[Enum.GetValues<RefusalReason>().Length];
    private readonly double[] _waitSamplesMs;
    private int _waitSampleCount;

    public QueueStatistics(int waitSampleWindow) => _waitSamplesMs = new double[waitSampleWindow];

    public int Waiting;
    public int Running;
    public int PeakRunning;
    public long Admitted;
    public long Requeued;
    private long _completed, _failed, _cancelled, _timedOut, _refused;

    public void Refused(RefusalReason reason)
    {
        _refusedByReason[(int)reason]++;
        _refused++;
    }

    public void Started()
    {
        Running++;
        PeakRunning = Math.Max(PeakRunning, Running);
    }

    public void Ended(TicketOutcome outcome)
    {
        switch (outcome)
        {
            case TicketOutcome.Completed: _completed++; break;
            case TicketOutcome.Failed: _failed++; break;
            case TicketOutcome.Cancelled: _cancelled++; break;
            case TicketOutcome.TimedOut: _timedOut++; break;
        }
    }

    /// <summary>Records how long a ticket waited for its first slot, replacing the oldest sample once the window is full.</summary>
    public void RecordWait(TimeSpan waited) => _waitSamplesMs[_waitSampleCount++ % _waitSamplesMs.Length] = waited.TotalMilliseconds;

    public QueueCounts Counts() => new(Waiting, Running, Admitted, _completed, _failed, _cancelled, _timedOut, _refused, Requeued);

    public Dictionary<RefusalReason, long> RefusedByReason()
    {
        var refused = new Dictionary<RefusalReason, long>();
        foreach (var reason in Enum.GetValues<RefusalReason>())
        {
            if (_refusedByReason[(int)reason] > 0)
            {
                refused[reason] = _refusedByReason[(int)reason];
            }
        }

        return refused;
    }

    /// <summary>The samples in the window, copied so they can be sorted after the lock is released.</summary>
    public double[] CopyWaitSamples() => _waitSamplesMs.AsSpan(0, Math.Min(_waitSampleCount, _waitSamplesMs.Length)).ToArray();

    /// <summary>Percentiles of the samples; sorts them in place.</summary>
    public static WaitPercentiles Percentiles(double[] samples)
    {
        int count = samples.Length;
        if (count == 0)
        {
            return new WaitPercentiles(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0);
        }

        Array.Sort(samples);
        TimeSpan At(double quantile) => TimeSpan.FromMilliseconds(samples[(int)Math.Ceiling(quantile * count) - 1]);
        return new WaitPercentiles(At(0.50), At(0.95), At(0.99), count);
    }
}
