using System.Diagnostics;
using System.Reflection;
using Anteroom.Scheduling;
using BenchmarkDotNet.Attributes;

namespace Anteroom.Benchmarks;

/// <summary>
/// The scheduler core's four hot operations with <see cref="N"/> tickets waiting for one model on one 1-slot backend,
/// spread over 1,000 users under the fair policy.
/// </summary>
/// <remarks>
/// Each measured invocation is one operation. The queue length stays at N: the iteration setup adds (or picks) the
/// tickets the iteration's operations use and the cleanup undoes what they did, both outside the measurement, so
/// within an iteration the queue holds between N and N + <see cref="OperationsPerIteration"/> tickets.
/// <see cref="EnqueueThenCancel"/> is the same work measured as a steady-state pair with no setup at all, as a check.
/// </remarks>
[Config(typeof(SchedulerBenchmarkConfig))]
public class SchedulerBenchmarks
{
    public const int OperationsPerIteration = 512;
    private const int Users = 1_000;
    private static readonly TimeSpan WarmUpTime = TimeSpan.FromSeconds(1);

    private readonly string[] _owners = [.. Enumerable.Range(0, Users).Select(i => $"user{i}")];
    private readonly TicketRequest[] _requests = new TicketRequest[OperationsPerIteration];
    private readonly Ticket?[] _batch = new Ticket?[OperationsPerIteration];
    private readonly List<Ticket> _waiting = [];
    private readonly Random _random = new(42);
    private Scheduler _scheduler = null!;
    private BackendState _backend = null!;
    private long _lastId;
    private int _next;

    /// <summary>Tickets waiting while the operation runs.</summary>
    [Params(1_000, 100_000, 1_000_000)]
    public int N { get; set; }

    [GlobalSetup]
    public void CreateQueue()
    {
        var options = new SchedulerOptions
        {
            MaxQueueLength = 2_000_000,
            MaxWaitingPerUser = 1_000_000,
            MaxInFlightPerUser = 1_000_000,
            MaxWait = TimeSpan.FromDays(1),
            // Short enough that a million waiting tickets are estimated to start within MaxWait.
            Prior = new ServicePrior { TimeToFirstToken = TimeSpan.FromMilliseconds(1), TokensPerSecond = 1000, OutputTokens = 1 },
        };
        _scheduler = new Scheduler(options, [new BackendDefinition("gpu", 1, ["m"])], new FrozenClock());

        // The dispatch benchmark ends the running lease; reading it from the backend's own list allocates nothing.
        var backends = (BackendState[])typeof(Scheduler).GetField("_backends", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(_scheduler)!;
        _backend = backends[0];

        AdmitNew();
        for (int i = 0; i < N; i++)
        {
            _waiting.Add(AdmitNew());
        }

        WarmUp();
        for (int i = 0; i < OperationsPerIteration; i++)
        {
            _requests[i] = NewRequest();
        }
    }

    /// <summary>
    /// Runs all four operations on the full queue for a while, leaving N as it was, so that every path the
    /// benchmarks measure runs as optimised code.
    /// </summary>
    /// <remarks>
    /// The runtime starts counting calls for promotion to optimised (tier-1) code only once no new method has been
    /// compiled for 100 ms, and promotes in the background. A benchmark here lasts 35 iterations of 512 operations,
    /// a few tens of milliseconds, so without this only what the setup ran (admission) is promoted and the rest is
    /// measured as quick, unoptimised code (position at N = 1,000 came out at 0.8 µs instead of 0.15 µs), which is
    /// not how a long-running gateway runs it.
    /// </remarks>
    private void WarmUp()
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < WarmUpTime)
        {
            // The position of a waiting ticket; a waiting ticket replaced by a newcomer (cancel and admit); the
            // head run and its place filled (dispatch and admit).
            _scheduler.GetPlace(_waiting[PickWaiting()]);
            int victim = PickWaiting();
            _scheduler.Cancel(_waiting[victim]);
            _waiting[victim] = AdmitNew();
            _backend.Running[0].Complete(100, 1);
            _waiting.Add(AdmitNew());
        }
    }

    /// <summary>The index of a random ticket in <see cref="_waiting"/> that still waits; those the warm-up dispatched are dropped on the way.</summary>
    private int PickWaiting()
    {
        while (true)
        {
            int pick = _random.Next(_waiting.Count);
            if (_waiting[pick].State == TicketState.Waiting)
            {
                return pick;
            }

            _waiting[pick] = _waiting[^1];
            _waiting.RemoveAt(_waiting.Count - 1);
        }
    }

    [GlobalCleanup]
    public void DisposeQueue() => _scheduler.Dispose();

    [IterationSetup(Target = nameof(Enqueue))]
    public void PrepareEnqueue()
    {
        for (int i = 0; i < OperationsPerIteration; i++)
        {
            _requests[i] = NewRequest();
        }

        _next = 0;
    }

    /// <summary>Admit: refusal checks, the start tag, the position and estimate of the newcomer, the insertion.</summary>
    [Benchmark]
    public Admission Enqueue()
    {
        var admission = _scheduler.Admit(_requests[_next]);
        _batch[_next] = admission.Ticket;
        _next = (_next + 1) % OperationsPerIteration;
        return admission;
    }

    [IterationCleanup(Target = nameof(Enqueue))]
    public void UndoEnqueue() => CancelBatch();

    [IterationSetup(Target = nameof(Dispatch))]
    public void PrepareDispatch()
    {
        // One extra waiting ticket per dispatch the iteration will make.
        for (int i = 0; i < OperationsPerIteration; i++)
        {
            AdmitNew();
        }
    }

    /// <summary>A slot frees (the running lease completes) and the head of the queue runs.</summary>
    [Benchmark]
    public void Dispatch() => _backend.Running[0].Complete(100, 1);

    [IterationSetup(Target = nameof(CancelWaiting))]
    public void PrepareCancelWaiting()
    {
        // Re-admit as many as the iteration cancels, then pick the victims anywhere in the queue.
        for (int i = 0; i < OperationsPerIteration; i++)
        {
            _waiting.Add(AdmitNew());
        }

        for (int i = 0; i < OperationsPerIteration; i++)
        {
            int pick = PickWaiting();
            _batch[i] = _waiting[pick];
            _waiting[pick] = _waiting[^1];
            _waiting.RemoveAt(_waiting.Count - 1);
        }

        _next = 0;
    }

    /// <summary>Cancel of a waiting ticket at a random place in the queue.</summary>
    [Benchmark]
    public bool CancelWaiting()
    {
        bool cancelled = _scheduler.Cancel(_batch[_next]!);
        _next = (_next + 1) % OperationsPerIteration;
        return cancelled;
    }

    [IterationSetup(Target = nameof(Position))]
    public void PreparePosition()
    {
        for (int i = 0; i < OperationsPerIteration; i++)
        {
            _batch[i] = _waiting[PickWaiting()];
        }

        _next = 0;
    }

    /// <summary>GetPlace of a random waiting ticket: its rank in the queue and its estimated wait.</summary>
    [Benchmark]
    public WaitingPlace? Position()
    {
        var place = _scheduler.GetPlace(_batch[_next]!);
        _next = (_next + 1) % OperationsPerIteration;
        return place;
    }

    /// <summary>Admit a ticket and cancel it again: one pair per invocation, no iteration setup.</summary>
    [Benchmark]
    public bool EnqueueThenCancel()
    {
        var ticket = _scheduler.Admit(_requests[_next]).Ticket!;
        _next = (_next + 1) % OperationsPerIteration;
        return _scheduler.Cancel(ticket);
    }

    private void CancelBatch()
    {
        for (int i = 0; i < _batch.Length; i++)
        {
            if (_batch[i] is { } ticket)
            {
                _scheduler.Cancel(ticket);
                _batch[i] = null;
            }
        }
    }

    private Ticket AdmitNew()
    {
        var admission = _scheduler.Admit(NewRequest());
        return admission.IsAdmitted ? admission.Ticket : throw new InvalidOperationException($"Setup was refused: {admission.Refusal.Message}");
    }

    private TicketRequest NewRequest()
    {
        long id = ++_lastId;
        return new TicketRequest { Id = $"t{id}", Owner = _owners[id % Users], Model = "m", PromptTokens = 100, MaxOutputTokens = 1 };
    }
}

/// <summary>
/// The system clock stopped at its start: on a moving clock the dispatch benchmark would measure each run as lasting
/// since setup, and the estimate for a million waiting tickets would soon exceed any deadline. Timers stay real.
/// </summary>
internal sealed class FrozenClock : TimeProvider
{
    private readonly DateTimeOffset _now = System.GetUtcNow();

    public override DateTimeOffset GetUtcNow() => _now;
}
