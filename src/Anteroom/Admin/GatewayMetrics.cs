using Anteroom.Requests;
using Anteroom.Scheduling;

namespace Anteroom.Admin;

/// <summary>An ended request as the metrics see it: when it waited, when it generated, what it produced where.</summary>
/// <param name="ArrivedAt">When it was admitted.</param>
/// <param name="DispatchedAt">When it first got a slot; null if it never did (cancelled or timed out waiting).</param>
/// <param name="GeneratingFrom">When its tokens started to flow (first token, else the start of its run).</param>
/// <param name="EndedAt">When it ended.</param>
/// <param name="Tokens">Tokens it generated, whatever its outcome: the GPU spent them.</param>
/// <param name="Backend">The backend it ran on last, if any.</param>
/// <param name="Completed">Whether it completed.</param>
internal readonly record struct RequestEnd(
    DateTimeOffset ArrivedAt, DateTimeOffset? DispatchedAt, DateTimeOffset? GeneratingFrom, DateTimeOffset EndedAt, int Tokens, string? Backend, bool Completed);

/// <summary>One bucket as read out: the figures of ten seconds.</summary>
internal sealed record MetricsBucket(
    DateTimeOffset At,
    bool Complete,
    double Seconds,
    int QueueLengthMax,
    int QueueLengthLast,
    IReadOnlyList<double> WaitsMs,
    double Tokens,
    int Completed,
    int Refusals,
    IReadOnlyDictionary<string, int> RefusalsByCode);

/// <summary>
/// The last hour of the gateway in ten-second buckets (a ring of 360 finished ones and the current one), for the
/// operator's charts: queue length (highest and last sample), waits of the requests dispatched in each bucket,
/// tokens generated (in all and per backend), completions and refusals (by code). Time comes only from the
/// injected <see cref="TimeProvider"/>; one small lock guards everything, and nothing slow runs inside it.
/// </summary>
/// <remarks>
/// Requests are reported when they end, so a wait is filed under the bucket its request was dispatched in and
/// tokens are spread evenly over the time they were generated in: figures of a bucket may still grow after it has
/// closed, for as long as its requests run. Readers that keep a copy refresh the recent buckets (see the snapshot
/// stream) rather than only appending the newest.
/// </remarks>
internal sealed class GatewayMetrics : IRequestMetrics
{
    public const int BucketSeconds = 10;

    /// <summary>Finished buckets kept: one hour.</summary>
    public const int HistoryBuckets = 3600 / BucketSeconds;

    /// <summary>
    /// Waits kept per bucket for percentiles; beyond this a uniform sample of them is kept (reservoir sampling), so
    /// memory stays bounded however busy a bucket is while small buckets stay exact.
    /// </summary>
    internal const int WaitSamplesPerBucket = 256;

    private static readonly long TicksPerBucket = TimeSpan.FromSeconds(BucketSeconds).Ticks;

    private readonly object _lock = new();
    private readonly TimeProvider _time;
    private readonly Bucket[] _ring = new Bucket[HistoryBuckets + 1];
    private readonly DateTimeOffset _startedAt;
    private long _current;
    private int _queueLength;
    private long _version;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public GatewayMetrics(TimeProvider time)
    {
        _time = time;
        _startedAt = time.GetUtcNow();
        for (int i = 0; i < _ring.Length; i++)
        {
            _ring[i] = new Bucket();
        }

        _current = IndexOf(_startedAt);
        _ring[Slot(_current)].Reset(_current, 0);
    }

    /// <summary>How many times anything was recorded; pass it to <see cref="WaitForChangeAsync"/>.</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Completes once something is recorded after <paramref name="seenVersion"/> was read.</summary>
    public Task WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default)
    {
        Task next;
        lock (_lock)
        {
            if (_version > seenVersion)
            {
                return Task.CompletedTask;
            }

            next = _changed.Task;
        }

        return cancellationToken.CanBeCanceled ? next.WaitAsync(cancellationToken) : next;
    }

    /// <summary>
    /// The number of requests waiting now. Sampled on every queue change; a new bucket starts from the last sample,
    /// since the length holds until the next change, so every bucket has a length even when nothing happened in it.
    /// </summary>
    public void SampleQueue(int length)
    {
        lock (_lock)
        {
            var bucket = CurrentLocked();
            bucket.QueueMax = Math.Max(bucket.QueueMax, length);
            bucket.QueueLast = length;
            _queueLength = length;
        }

        // Queue samples are not announced: the scheduler's own change signal already covers them.
    }

    /// <inheritdoc />
    public void Refused(string code)
    {
        lock (_lock)
        {
            var bucket = CurrentLocked();
            bucket.Refusals++;
            bucket.RefusalsByCode ??= new Dictionary<string, int>(StringComparer.Ordinal);
            bucket.RefusalsByCode[code] = bucket.RefusalsByCode.GetValueOrDefault(code) + 1;
        }

        Announce();
    }

    /// <inheritdoc />
    public void Ended(LiveRequest request, int tokensOut)
    {
        var ticket = request.Ticket;
        Record(new RequestEnd(
            ticket.ArrivedAt, ticket.FirstDispatchedAt, request.FirstTokenAt ?? request.StartedAt, request.EndedAt ?? _time.GetUtcNow(),
            tokensOut, ticket.Backend, ticket.Outcome == TicketOutcome.Completed));
    }

    /// <summary>Files an ended request: its wait where it was dispatched, its tokens over the time it generated them.</summary>
    public void Record(RequestEnd end)
    {
        lock (_lock)
        {
            CurrentLocked();
            if (end.DispatchedAt is { } dispatched && BucketLocked(IndexOf(dispatched)) is { } dispatchBucket)
            {
                dispatchBucket.AddWait(Math.Max(0, (dispatched - end.ArrivedAt).TotalMilliseconds));
            }

            if (end.Completed && BucketLocked(IndexOf(end.EndedAt)) is { } endBucket)
            {
                endBucket.Completed++;
            }

            if (end.Tokens > 0)
            {
                SpreadTokensLocked(end);
            }
        }

        Announce();
    }

    /// <summary>The newest <paramref name="count"/> buckets, oldest first, the current (unfinished) one last.</summary>
    public IReadOnlyList<MetricsBucket> Read(int count)
    {
        count = Math.Clamp(count, 1, _ring.Length);
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            CurrentLocked();
            var result = new List<MetricsBucket>(count);
            for (long index = _current - count + 1; index <= _current; index++)
            {
                var at = StartOf(index);
                bool complete = index < _current;
                // The unfinished bucket covers only the time so far (at least a second, so rates stay finite).
                double seconds = complete ? BucketSeconds : Math.Max(1, (now - at).TotalSeconds);
                var bucket = _ring[Slot(index)];
                result.Add(bucket.Index == index
                    ? new MetricsBucket(at, complete, seconds, bucket.QueueMax, bucket.QueueLast, bucket.SortedWaits(), bucket.Tokens,
                        bucket.Completed, bucket.Refusals, bucket.RefusalsByCode is { } codes ? new Dictionary<string, int>(codes) : Empty)
                    // Before the gateway started: nothing happened, but the time axis still needs the point.
                    : new MetricsBucket(at, complete, seconds, 0, 0, [], 0, 0, 0, Empty));
            }

            return result;
        }
    }

    /// <summary>
    /// Tokens per second of each backend over the last minute: the current bucket and the five before it, divided
    /// by the time they cover (less if the gateway started within the minute).
    /// </summary>
    public IReadOnlyDictionary<string, double> BackendTokensPerSecond()
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            CurrentLocked();
            long first = _current - ((60 / BucketSeconds) - 1);
            var from = StartOf(first) > _startedAt ? StartOf(first) : _startedAt;
            double seconds = Math.Max(1, (now - from).TotalSeconds);
            var totals = new Dictionary<string, double>(StringComparer.Ordinal);
            for (long index = first; index <= _current; index++)
            {
                var bucket = _ring[Slot(index)];
                if (bucket.Index != index || bucket.TokensByBackend is null)
                {
                    continue;
                }

                foreach (var (backend, tokens) in bucket.TokensByBackend)
                {
                    totals[backend] = totals.GetValueOrDefault(backend) + tokens;
                }
            }

            return totals.ToDictionary(t => t.Key, t => t.Value / seconds, StringComparer.Ordinal);
        }
    }

    private static readonly IReadOnlyDictionary<string, int> Empty = new Dictionary<string, int>();

    private static long IndexOf(DateTimeOffset at) => at.UtcTicks / TicksPerBucket;

    private static DateTimeOffset StartOf(long index) => new(index * TicksPerBucket, TimeSpan.Zero);

    private int Slot(long index) => (int)(index % _ring.Length);

    /// <summary>
    /// The bucket of now, first opening every bucket since the last one touched; each starts with the last queue
    /// length. At most a ring's worth is opened, however long nothing happened.
    /// </summary>
    private Bucket CurrentLocked()
    {
        long now = IndexOf(_time.GetUtcNow());
        if (now > _current)
        {
            for (long index = Math.Max(_current + 1, now - _ring.Length + 1); index <= now; index++)
            {
                _ring[Slot(index)].Reset(index, _queueLength);
            }

            _current = now;
        }

        return _ring[Slot(_current)];
    }

    /// <summary>The bucket of <paramref name="index"/>, or null when it is older than the hour kept or before start.</summary>
    private Bucket? BucketLocked(long index)
    {
        if (index > _current || index <= _current - _ring.Length)
        {
            return null;
        }

        var bucket = _ring[Slot(index)];
        return bucket.Index == index ? bucket : null;
    }

    /// <summary>
    /// Spreads a request's tokens over the buckets its generation overlapped, in proportion to the overlap, so a long
    /// answer shows as steady throughput rather than as a spike in the bucket it ended in.
    /// </summary>
    private void SpreadTokensLocked(RequestEnd end)
    {
        var from = end.GeneratingFrom is { } start && start < end.EndedAt ? start : end.EndedAt;
        long first = IndexOf(from);
        long last = IndexOf(end.EndedAt);
        double span = (end.EndedAt - from).Ticks;
        for (long index = first; index <= last; index++)
        {
            if (BucketLocked(index) is not { } bucket)
            {
                continue;
            }

            double share = span == 0 ? 1 : (Math.Min(end.EndedAt.UtcTicks, (index + 1) * TicksPerBucket) - Math.Max(from.UtcTicks, index * TicksPerBucket)) / span;
            double tokens = end.Tokens * share;
            bucket.Tokens += tokens;
            if (end.Backend is { } backend)
            {
                bucket.TokensByBackend ??= new Dictionary<string, double>(StringComparer.Ordinal);
                bucket.TokensByBackend[backend] = bucket.TokensByBackend.GetValueOrDefault(backend) + tokens;
            }
        }
    }

    private void Announce()
    {
        TaskCompletionSource announced;
        lock (_lock)
        {
            _version++;
            announced = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        announced.TrySetResult();
    }

    private sealed class Bucket
    {
        private readonly List<double> _waits = [];
        private long _waitsSeen;

        /// <summary>Which ten seconds it holds; -1 for a slot not yet used since start.</summary>
        public long Index { get; private set; } = -1;

        public int QueueMax { get; set; }

        public int QueueLast { get; set; }

        public double Tokens { get; set; }

        public Dictionary<string, double>? TokensByBackend { get; set; }

        public int Completed { get; set; }

        public int Refusals { get; set; }

        public Dictionary<string, int>? RefusalsByCode { get; set; }

        public void Reset(long index, int queueLength)
        {
            Index = index;
            QueueMax = queueLength;
            QueueLast = queueLength;
            _waits.Clear();
            _waitsSeen = 0;
            Tokens = 0;
            TokensByBackend = null;
            Completed = 0;
            Refusals = 0;
            RefusalsByCode = null;
        }

        public void AddWait(double milliseconds)
        {
            _waitsSeen++;
            if (_waits.Count < WaitSamplesPerBucket)
            {
                _waits.Add(milliseconds);
                return;
            }

            // Algorithm R: every wait seen so far is kept with the same probability.
            long pick = Random.Shared.NextInt64(_waitsSeen);
            if (pick < WaitSamplesPerBucket)
            {
                _waits[(int)pick] = milliseconds;
            }
        }

        public double[] SortedWaits()
        {
            var sorted = _waits.ToArray();
            Array.Sort(sorted);
            return sorted;
        }
    }
}
