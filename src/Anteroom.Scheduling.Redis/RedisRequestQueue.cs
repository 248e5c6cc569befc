using System.Globalization;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Redis;

/// <summary>
/// <see cref="IRequestQueue"/> in Redis: one fair queue per model shared by every gateway replica on the same key
/// prefix, with the in-process queue's policies and semantics. Every operation is one atomic Lua script
/// (<see cref="QueueScripts"/>); positions, estimates, counts and limits are global.
/// </summary>
/// <remarks>
/// <para>
/// Holders and handles: a replica keeps a mirror (<see cref="RedisTicket"/>) of each ticket it admitted. The
/// scripts tell a ticket's holder what happened to it — dispatched, ended while waiting, asked to abort — in their
/// reply when the caller holds it, and on the holder's pub/sub channel otherwise, so a ticket admitted here runs
/// here when a slot frees through another replica. A slot lease's end is recorded on the mirror at once and settled
/// in the store in the background (commands from one process go down one connection in order, so a later
/// operation of this replica always sees it).
/// </para>
/// <para>
/// Slots are leased per replica: every script renews its caller's lease, and a heartbeat on the
/// <see cref="TimeProvider"/> renews it at a third of the lease duration while the replica is idle. Whichever
/// replica acts next after a lease ran out fails the dead replica's running tickets, frees their slots and gives
/// them to waiting tickets; the dead replica's waiting tickets are cancelled, as their holders are gone.
/// </para>
/// <para>
/// Unless they were admitted with a <see cref="TicketRequest.HolderGrace"/>: then a dead replica's waiting ticket
/// becomes an orphan for that long, holding its place (positions, listings and counts still show it) while dispatch
/// passes over it, as no replica would take its slot. A replica its client reconnected to takes it over with
/// <see cref="AdoptAsync"/>, from then on exactly as if it had admitted it; one nobody adopts is cancelled by the
/// first sweep after its grace (within a third of the lease duration, by any replica's heartbeat), or times out at
/// its deadline as any waiting ticket does.
/// </para>
/// <para>
/// Time comes from the given <see cref="TimeProvider"/> only, passed into every script; deadlines, heartbeats and
/// change coalescing run on its timers.
/// </para>
/// <para>
/// Redis may restart empty (it is run without persistence). The init script gives each store an id, and every other
/// script first checks that the store still has the id this replica knows; when it does not, the replica runs init
/// again (idempotent, so several replicas may race to do it), adopts the store's new id and retries the operation
/// once, so the first request after Redis returns is served. The tickets it held in the lost store end there and
/// then: a waiting one fails (its holder is told at once), a running one runs to its end, which then changes nothing
/// in the store. A replica notices at its next operation, its next heartbeat, or when its connection is restored.
/// While Redis is out of reach, operations fail at once with a <see cref="RedisConnectionException"/> instead of
/// waiting for the connection's timeout; store writes started in the background then are sent again when the
/// connection is restored.
/// </para>
/// </remarks>
internal sealed partial class RedisRequestQueue : IRequestQueue, IAsyncDisposable
{
    private const int Header = 16;

    private readonly IConnectionMultiplexer _connection;
    private readonly IDatabase _database;
    private readonly ISubscriber _subscriber;
    private readonly RedisKey[] _keys;
    private readonly string _prefix;
    private readonly SchedulerOptions _options;
    private readonly TimeProvider _time;
    private readonly string _replica;
    private readonly TimeSpan _leaseDuration;
    private readonly BackendDefinition[] _backends;
    private readonly string[] _models;
    private readonly RedisValue[] _settings;
    private readonly ChangeFeed _changes;
    private readonly object _gate = new();
    private readonly Dictionary<string, RedisTicket> _held = new(StringComparer.Ordinal);
    // Events for tickets this replica has not registered yet: another replica's script can dispatch a ticket and
    // publish it before this replica's admission reply has been read.
    private readonly Dictionary<string, List<(string Message, long ReceivedAt)>> _early = new(StringComparer.Ordinal);
    private readonly PriorityQueue<RedisTicket, long> _deadlines = new();
    private readonly ITimer _deadlineTimer;
    private readonly ITimer _heartbeat;
    private readonly HashSet<Task> _background = [];
    private readonly Dictionary<string, TaskCompletionSource> _markers = new(StringComparer.Ordinal);
    // One recovery of a lost store at a time: the others wait for it and find the new store adopted.
    private readonly SemaphoreSlim _recovery = new(1, 1);
    // Background store writes that found Redis out of reach, sent again in order when the connection is restored.
    private readonly List<(string Script, DateTimeOffset Now, RedisValue[] Arguments)> _unsent = [];
    private Task _ready;
    // The id of the store this replica's tickets live in; empty until init has run.
    private string _store = "";
    private readonly RedisChannel _eventChannel;
    private readonly RedisChannel _changeChannel;
    private long _armed = long.MaxValue;
    private bool _disposed;

    /// <summary>Creates a queue on the store under <paramref name="keyPrefix"/>.</summary>
    /// <param name="connection">The Redis connection; the caller owns it.</param>
    /// <param name="keyPrefix">Every key and channel starts with it; put a hash tag in it (<c>{anteroom}:</c>) on a cluster.</param>
    /// <param name="options">The scheduling policy and limits; every replica on the prefix must be given the same.</param>
    /// <param name="backends">The backends; every replica on the prefix must be given the same.</param>
    /// <param name="timeProvider">The clock of every instant and timer.</param>
    /// <param name="leaseDuration">How long a replica's slots outlive its last sign of life.</param>
    /// <param name="replicaId">This replica's id, unique among the replicas on the prefix.</param>
    public RedisRequestQueue(
        IConnectionMultiplexer connection,
        string keyPrefix,
        SchedulerOptions options,
        IEnumerable<BackendDefinition> backends,
        TimeProvider? timeProvider,
        TimeSpan leaseDuration,
        string replicaId)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(keyPrefix);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backends);
        ArgumentException.ThrowIfNullOrEmpty(replicaId);
        ArgumentOutOfRangeException.ThrowIfLessThan(leaseDuration, TimeSpan.FromMilliseconds(3));
        options.Validate();
        _backends = [.. backends];
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var definition in _backends)
        {
            if (string.IsNullOrWhiteSpace(definition.Name) || definition.Slots < 1 || definition.Models.Count == 0
                || definition.Name.Contains('\n', StringComparison.Ordinal) || definition.Models.Any(m => string.IsNullOrEmpty(m) || m.Contains('\n', StringComparison.Ordinal)))
            {
                throw new ArgumentException($"Backend '{definition.Name}' needs a name, at least one slot and at least one model, none with a line break.", nameof(backends));
            }

            if (!names.Add(definition.Name))
            {
                throw new ArgumentException($"Backend name '{definition.Name}' is used twice.", nameof(backends));
            }
        }

        _connection = connection;
        _database = connection.GetDatabase();
        _subscriber = connection.GetSubscriber();
        _prefix = keyPrefix;
        _keys = [keyPrefix];
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _replica = replicaId;
        _leaseDuration = leaseDuration;
        _models = [.. _backends.SelectMany(b => b.Models).Distinct(StringComparer.Ordinal)];
        _settings =
        [
            options.Policy == SchedulingPolicy.Fair ? "1" : "0",
            options.MaxQueueLength,
            options.MaxWaitingPerUser,
            options.MaxInFlightPerUser,
            options.MaxDispatchAttempts,
            Number(options.OutputTokenWeight),
            Number(options.EstimateSmoothing),
            Number(options.Prior.TimeToFirstToken.TotalMilliseconds),
            Number(options.Prior.TokensPerSecond),
            Number(options.Prior.OutputTokens),
            options.WaitSampleWindow,
            Micros(leaseDuration),
            Number(options.NoBackendRetryAfter.TotalMilliseconds),
        ];
        _eventChannel = RedisChannel.Literal(keyPrefix + "replica:" + replicaId);
        _changeChannel = RedisChannel.Literal(keyPrefix + "changes");
        _changes = new ChangeFeed(_time, options.ChangeCoalescing);
        _deadlineTimer = _time.CreateTimer(static state => ((RedisRequestQueue)state!).OnDeadline(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        var beat = leaseDuration / 3;
        _heartbeat = _time.CreateTimer(static state => ((RedisRequestQueue)state!).OnHeartbeat(), this, beat, beat);
        connection.ConnectionRestored += OnConnectionRestored;
        _ready = StartAsync();
    }

    public SchedulingPolicy Policy => _options.Policy;

    public IReadOnlyCollection<string> Models => _models;

    public long ChangeVersion => _changes.Version;

    internal DateTimeOffset Now => _time.GetUtcNow();

    public async ValueTask<Admission> AdmitAsync(TicketRequest request, CancellationToken cancellationToken = default)
    {
        Validate(request);
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        var maxWait = MaxWaitFor(request.MaxWait);
        var (reply, store) = await EvaluateInStoreAsync(QueueScripts.Admit, now,
            request.Id, request.Owner, request.Model, Number(request.Weight), request.PromptTokens,
            Optional(request.MaxOutputTokens), Optional(request.MaxInFlight), Optional(request.MaxWaiting), Micros(maxWait),
            Micros(request.HolderGrace)).ConfigureAwait(false);
        var results = (RedisResult[])reply!;
        if ((string?)results[2] == "admitted")
        {
            var ticket = new RedisTicket(this, request, long.Parse((string)results[3]!, CultureInfo.InvariantCulture), now, maxWait, store);
            Register(ticket);
            Settle(results, now);
            return Admission.Admitted(ticket);
        }

        Settle(results, now);
        return Admission.Refused(Refusal(request, Enum.Parse<RefusalReason>((string)results[3]!), Number(results[4]), Number(results[5]), Number(results[6]), maxWait));
    }

    public ValueTask<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default)
    {
        var own = Own(ticket);
        var dispatched = own.DispatchSource.Task;
        return dispatched.IsCompleted || !cancellationToken.CanBeCanceled
            ? new(dispatched)
            : new(WaitCancellablyAsync(own, dispatched, cancellationToken));
    }

    public async ValueTask<Ticket?> AdoptAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        var (reply, store) = await EvaluateInStoreAsync(QueueScripts.Adopt, now, id).ConfigureAwait(false);
        var results = (RedisResult[])reply!;
        if ((string?)results[2] != "adopted")
        {
            Settle(results, now);
            return null;
        }

        var ticket = Adopted(id, results, store);
        // Registered before the reply's events are applied, as an admission is: the script may have started it
        // already (it was first in its queue with a slot free), and that dispatch is this ticket's.
        Register(ticket);
        Settle(results, now);
        return ticket;
    }

    public async ValueTask<bool> CancelAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        var results = (RedisResult[])(await EvaluateAsync(QueueScripts.Cancel, now, id, "").ConfigureAwait(false))!;
        Settle(results, now);
        return (int)results[2] == 1 || AbortLost(id);
    }

    public async ValueTask<WaitingPlace?> GetPlaceAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        await ReadyAsync().ConfigureAwait(false);
        var reply = await EvaluateAsync(QueueScripts.Place, Now, id).ConfigureAwait(false);
        if (reply.IsNull)
        {
            return null;
        }

        var place = (RedisResult[])reply!;
        return new WaitingPlace((int)place[0], (int)place[1], Duration(Number(place[2])));
    }

    public ValueTask WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default) =>
        new(_changes.WaitAsync(seenVersion, cancellationToken));

    public async ValueTask<QueueCounts> GetCountsAsync(CancellationToken cancellationToken = default)
    {
        await ReadyAsync().ConfigureAwait(false);
        return Counts(Fields(await EvaluateAsync(QueueScripts.Counts, Now).ConfigureAwait(false)));
    }

    public async ValueTask<SchedulerSnapshot> GetSnapshotAsync(CancellationToken cancellationToken = default)
    {
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        var parts = (RedisResult[])(await EvaluateAsync(QueueScripts.Snapshot, now).ConfigureAwait(false))!;
        var meta = Fields(parts[0]);
        var counts = Counts(meta);
        long started = (long)Field(meta, "started");
        double uptime = Math.Max((Micros(now) - started) / 1e6, 1e-9);
        var refused = new Dictionary<RefusalReason, long>();
        foreach (var reason in Enum.GetValues<RefusalReason>())
        {
            if (Field(meta, "refused:" + reason) is > 0 and var count)
            {
                refused[reason] = (long)count;
            }
        }

        var models = ((RedisResult[])parts[1]!).Select(row => (RedisResult[])row!).Select(row => new ModelQueueSnapshot(
            (string)row[0]!, (int)row[1], (int)row[2], (int)row[3], Duration(Number(row[4])))).ToList();
        var backends = ((RedisResult[])parts[2]!).Select(row => (RedisResult[])row!).Select(row =>
        {
            var definition = _backends.Single(b => b.Name == (string)row[0]!);
            return new BackendSnapshot(
                definition.Name, definition.Slots, (int)row[2], (int)row[3] == 1,
                [.. definition.Models.Distinct(StringComparer.Ordinal)], (long)row[4],
                Number(row[5]) / 1e6 / (definition.Slots * uptime));
        }).ToList();
        var waits = ((RedisResult[])parts[3]!).Select(Number).ToArray();
        return new SchedulerSnapshot
        {
            TakenAt = now,
            Admitted = counts.Admitted,
            Completed = counts.Completed,
            Failed = counts.Failed,
            Cancelled = counts.Cancelled,
            TimedOut = counts.TimedOut,
            Refused = counts.Refused,
            RefusedByReason = refused,
            Requeued = counts.Requeued,
            Waiting = counts.Waiting,
            Running = counts.Running,
            PeakRunning = (int)Field(meta, "peak"),
            Models = models,
            Backends = backends,
            Wait = QueueStatistics.Percentiles(waits),
        };
    }

    public async ValueTask<IReadOnlyList<WaitingTicket>> GetWaitingAsync(int limitPerModel = int.MaxValue, CancellationToken cancellationToken = default)
    {
        if (limitPerModel <= 0)
        {
            return [];
        }

        await ReadyAsync().ConfigureAwait(false);
        // The script ranges up to index limit - 1, and -1 is the last: int.MaxValue, no limit, is passed as 0.
        long limit = limitPerModel == int.MaxValue ? 0 : limitPerModel;
        var flat = (RedisResult[])(await EvaluateAsync(QueueScripts.Waiting, Now, limit).ConfigureAwait(false))!;
        var waiting = new List<WaitingTicket>(flat.Length / 6);
        for (int i = 0; i < flat.Length; i += 6)
        {
            waiting.Add(new WaitingTicket((string)flat[i]!, (string)flat[i + 1]!, (string)flat[i + 2]!, Number(flat[i + 3]), (int)flat[i + 4], Instant(Number(flat[i + 5]))));
        }

        return waiting;
    }

    public async ValueTask<IReadOnlyList<RunningTicket>> GetRunningAsync(CancellationToken cancellationToken = default)
    {
        await ReadyAsync().ConfigureAwait(false);
        var flat = (RedisResult[])(await EvaluateAsync(QueueScripts.Running, Now).ConfigureAwait(false))!;
        var running = new List<RunningTicket>(flat.Length / 6);
        for (int i = 0; i < flat.Length; i += 6)
        {
            running.Add(new RunningTicket((string)flat[i]!, (string)flat[i + 1]!, (string)flat[i + 2]!, (string)flat[i + 3]!, Instant(Number(flat[i + 4])), (int)Number(flat[i + 5])));
        }

        return running;
    }

    public async ValueTask<TimeSpan?> EstimateWaitAsync(string model, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        await ReadyAsync().ConfigureAwait(false);
        var reply = await EvaluateAsync(QueueScripts.Estimate, Now, model).ConfigureAwait(false);
        return reply.IsNull ? null : Duration(Number(reply));
    }

    public async ValueTask SetBackendHealthAsync(string backend, bool healthy, CancellationToken cancellationToken = default)
    {
        RequireBackend(backend);
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        Settle((RedisResult[])(await EvaluateAsync(QueueScripts.Health, now, backend, healthy ? "1" : "0").ConfigureAwait(false))!, now);
    }

    public async ValueTask AllowBackendTrialAsync(string backend, CancellationToken cancellationToken = default)
    {
        RequireBackend(backend);
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        Settle((RedisResult[])(await EvaluateAsync(QueueScripts.Trial, now, backend).ConfigureAwait(false))!, now);
    }

    public async ValueTask<int> ForgetIdleUsersAsync(CancellationToken cancellationToken = default)
    {
        await ReadyAsync().ConfigureAwait(false);
        var now = Now;
        var results = (RedisResult[])(await EvaluateAsync(QueueScripts.Forget, now).ConfigureAwait(false))!;
        Settle(results, now);
        return (int)results[2];
    }

    /// <summary>
    /// Completes when every store operation this replica started in the background (lease ends, requeues, cancels
    /// by a holder's token, deadline and heartbeat sweeps) has been applied and its events delivered here.
    /// </summary>
    internal async Task SettleAsync()
    {
        while (true)
        {
            Task[] pending;
            lock (_background)
            {
                if (_background.Count == 0)
                {
                    return;
                }

                pending = [.. _background];
            }

            await Task.WhenAll(pending).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Completes when every event published to this replica before the call has been applied: for tests that
    /// watch one replica act on another's tickets. Pub/sub delivers a channel's messages in order, so a marker sent
    /// now arrives after them.
    /// </summary>
    internal async Task ReceiveAsync()
    {
        await ReadyAsync().ConfigureAwait(false);
        var marker = "M\n" + Guid.NewGuid().ToString("N");
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _markers[marker] = received;
        }

        await _subscriber.PublishAsync(_eventChannel, marker).ConfigureAwait(false);
        await received.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        // Nothing is ended in the store: the leases of tickets still held here run out, as a crash's would.
        _connection.ConnectionRestored -= OnConnectionRestored;
        _heartbeat.Dispose();
        _deadlineTimer.Dispose();
        _changes.Dispose();
        try
        {
            await SettleAsync().ConfigureAwait(false);
        }
        finally
        {
            await UnsubscribeQuietlyAsync(_eventChannel).ConfigureAwait(false);
            await UnsubscribeQuietlyAsync(_changeChannel).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Unsubscribing only tidies the connection. With Redis gone (a gateway stopping during an outage, or because
    /// Redis was stopped first) the subscription is gone with it, and a shutdown must not fail over it.
    /// </summary>
    private async Task UnsubscribeQuietlyAsync(RedisChannel channel)
    {
        try
        {
            await _subscriber.UnsubscribeAsync(channel).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is RedisConnectionException or RedisTimeoutException)
        {
            // Nothing left to tidy.
        }
    }
}
