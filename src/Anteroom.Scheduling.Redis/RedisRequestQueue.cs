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
internal sealed class RedisRequestQueue : IRequestQueue, IAsyncDisposable
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
            Optional(request.MaxOutputTokens), Optional(request.MaxInFlight), Optional(request.MaxWaiting), Micros(maxWait)).ConfigureAwait(false);
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
        var running = new List<RunningTicket>(flat.Length / 5);
        for (int i = 0; i < flat.Length; i += 5)
        {
            running.Add(new RunningTicket((string)flat[i]!, (string)flat[i + 1]!, (string)flat[i + 2]!, (string)flat[i + 3]!, Instant(Number(flat[i + 4]))));
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

    internal void EndLease(RedisLease lease, TicketOutcome outcome, ServiceSample? sample)
    {
        var now = Now;
        var ticket = lease.Holder;
        lock (_gate)
        {
            if (!ReferenceEquals(ticket.Lease, lease) || ticket.State != TicketState.Running)
            {
                // The store ended it already: this replica's lease ran out.
                return;
            }

            ticket.End(outcome, now);
            Forget(ticket);
            if (ticket.Store != _store)
            {
                // Its store was lost: the store in use never knew it, and its slot there is not taken.
                return;
            }
        }

        EndInStore(lease, outcome, sample, now);
    }

    internal bool Requeue(RedisLease lease)
    {
        var now = Now;
        var ticket = lease.Holder;
        TicketOutcome? ended = null;
        lock (_gate)
        {
            if (!ReferenceEquals(ticket.Lease, lease) || ticket.State != TicketState.Running)
            {
                return false;
            }

            bool lost = ticket.Store != _store;
            if (ticket.AbortRequested)
            {
                ended = TicketOutcome.Cancelled;
            }
            else if (ticket.Attempts >= _options.MaxDispatchAttempts || lost)
            {
                // A ticket of a lost store cannot wait again: the store in use does not know it.
                ended = TicketOutcome.Failed;
            }

            if (ended is { } outcome)
            {
                ticket.End(outcome, now);
                Forget(ticket);
            }

            if (lost)
            {
                return false;
            }
            else
            {
                ticket.WaitAgain(now);
                TrackDeadlineLocked(ticket);
            }
        }

        if (ended is { } end)
        {
            EndInStore(lease, end, null, now);
            return false;
        }

        InBackground(QueueScripts.Requeue, now, ticket.Id, ticket.Sequence, lease.Attempt);
        return true;
    }

    private void EndInStore(RedisLease lease, TicketOutcome outcome, ServiceSample? sample, DateTimeOffset now)
    {
        var ticket = lease.Holder;
        RedisValue firstToken = lease.FirstTokenAt is { } at ? Micros(at) : "";
        InBackground(QueueScripts.End, now,
            ticket.Id, ticket.Sequence, lease.Attempt, (int)outcome,
            sample?.PromptTokens ?? 0, sample is { } measured ? measured.OutputTokens : "", firstToken);
    }

    /// <summary>Completes once the queue has subscribed and made or found its store; starts again if that failed (Redis was out of reach).</summary>
    private Task ReadyAsync()
    {
        lock (_gate)
        {
            if (_ready.IsFaulted || _ready.IsCanceled)
            {
                _ready = StartAsync();
            }

            return _ready;
        }
    }

    private async Task StartAsync()
    {
        // Nothing is half done when Redis is out of reach at start: the next operation starts again from here.
        EnsureConnected();
        var events = await _subscriber.SubscribeAsync(_eventChannel).ConfigureAwait(false);
        events.OnMessage(message => OnEvent((string)message.Message!));
        var changes = await _subscriber.SubscribeAsync(_changeChannel).ConfigureAwait(false);
        changes.OnMessage(message => OnChangeMessage((string)message.Message!));
        await RecoverAsync("").ConfigureAwait(false);
    }

    /// <summary>
    /// Makes the store again if the one this replica used, <paramref name="lost"/>, is still the one it knows (a
    /// concurrent caller may have recovered already), and ends what this replica held in the lost one.
    /// </summary>
    private async Task RecoverAsync(string lost)
    {
        await _recovery.WaitAsync().ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _store) != lost)
            {
                return;
            }

            var layout = new List<RedisValue> { Guid.NewGuid().ToString("N"), _backends.Length };
            foreach (var backend in _backends)
            {
                layout.Add(backend.Name);
                layout.Add(backend.Slots);
                layout.Add(string.Join('\n', backend.Models.Distinct(StringComparer.Ordinal)));
            }

            var store = (string)(await EvaluateOnceAsync(QueueScripts.Init, lost, Now, [.. layout]).ConfigureAwait(false))!;
            Adopt(store);
        }
        finally
        {
            _recovery.Release();
        }
    }

    /// <summary>
    /// Uses <paramref name="store"/> from now on. The waiting tickets held here that lived in another store are
    /// gone from the queue: they fail now, so no holder waits for a slot that can never come. The running ones run
    /// on; their end changes nothing in the store (<see cref="EndLease"/>).
    /// </summary>
    private void Adopt(string store)
    {
        var now = Now;
        List<RedisTicket> lost;
        lock (_gate)
        {
            Volatile.Write(ref _store, store);
            lost = [.. _held.Values.Where(t => t.Store != store && t.State == TicketState.Waiting)];
            foreach (var ticket in lost)
            {
                ticket.End(TicketOutcome.Failed, now);
                Forget(ticket);
            }
        }

        foreach (var ticket in lost)
        {
            ticket.DispatchSource.TrySetResult(Dispatch.Ended(TicketOutcome.Failed));
        }
    }

    /// <summary>Aborts a running ticket held here whose store was lost, which no store can cancel any more.</summary>
    private bool AbortLost(string id)
    {
        CancellationTokenSource abort;
        lock (_gate)
        {
            if (!_held.TryGetValue(id, out var ticket) || ticket.State != TicketState.Running || ticket.Store == _store)
            {
                return false;
            }

            abort = ticket.AbortSource;
        }

        abort.Cancel();
        return true;
    }

    private async Task<RedisResult> EvaluateAsync(string script, DateTimeOffset now, params RedisValue[] arguments) =>
        (await EvaluateInStoreAsync(script, now, arguments).ConfigureAwait(false)).Reply;

    /// <summary>
    /// Runs an operation in the store this replica knows; when that store was lost, makes it again and retries once.
    /// Returns the reply and the id of the store that gave it.
    /// </summary>
    private async Task<(RedisResult Reply, string Store)> EvaluateInStoreAsync(string script, DateTimeOffset now, params RedisValue[] arguments)
    {
        string store = Volatile.Read(ref _store);
        try
        {
            return (await EvaluateOnceAsync(script, store, now, arguments).ConfigureAwait(false), store);
        }
        catch (RedisServerException lost) when (lost.Message.StartsWith(QueueScripts.StoreLost, StringComparison.Ordinal))
        {
            await RecoverAsync(store).ConfigureAwait(false);
            store = Volatile.Read(ref _store);
            return (await EvaluateOnceAsync(script, store, now, arguments).ConfigureAwait(false), store);
        }
    }

    private async Task<RedisResult> EvaluateOnceAsync(string script, string store, DateTimeOffset now, RedisValue[] arguments)
    {
        EnsureConnected();
        var values = new RedisValue[Header + arguments.Length];
        values[0] = Micros(now);
        values[1] = _replica;
        _settings.CopyTo(values, 2);
        values[15] = store;
        arguments.CopyTo(values, Header);
        try
        {
            return await _database.ScriptEvaluateAsync(script, _keys, values).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
        {
            throw Unreachable(e);
        }
    }

    /// <summary>
    /// Fails at once while the connection knows Redis is out of reach: a command would otherwise wait in the
    /// multiplexer's backlog for its timeout (seconds), and a request must not hang that long for an answer.
    /// </summary>
    private void EnsureConnected()
    {
        if (!_connection.IsConnected)
        {
            throw Unreachable(null);
        }
    }

    private static RedisConnectionException Unreachable(Exception? cause) => new(
        ConnectionFailureType.UnableToConnect,
        CommandFlags.None,
        "Redis cannot be reached, so the request queue the gateway's replicas share is unavailable; the connection keeps trying.",
        cause,
        CommandStatus.Unknown);

    /// <summary>
    /// Starts a store operation now (so it reaches Redis before anything this replica does later) and applies its
    /// reply when it comes, tracked for <see cref="SettleAsync"/>.
    /// </summary>
    private void InBackground(string script, DateTimeOffset now, params RedisValue[] arguments)
    {
        var call = EvaluateAsync(script, now, arguments);
        var applied = ApplyWhenDoneAsync(call, script, now, arguments);
        lock (_background)
        {
            _background.Add(applied);
        }

        applied.ContinueWith(
            static (task, state) =>
            {
                var set = (HashSet<Task>)state!;
                lock (set)
                {
                    set.Remove(task);
                }
            },
            _background,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private async Task ApplyWhenDoneAsync(Task<RedisResult> call, string script, DateTimeOffset now, RedisValue[] arguments)
    {
        RedisResult reply;
        try
        {
            reply = await call.ConfigureAwait(false);
        }
        catch (RedisConnectionException)
        {
            // Redis is out of reach. A sweep comes again with the next heartbeat; a lease end, requeue or cancel is
            // sent again when the connection is restored, so a slot is not kept for good by a write that was lost.
            if (!ReferenceEquals(script, QueueScripts.Sweep))
            {
                lock (_gate)
                {
                    _unsent.Add((script, now, arguments));
                }
            }

            return;
        }

        Settle((RedisResult[])reply!, now);
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType != ConnectionType.Interactive)
        {
            return;
        }

        (string Script, DateTimeOffset Now, RedisValue[] Arguments)[] unsent;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            unsent = [.. _unsent];
            _unsent.Clear();
        }

        foreach (var (script, now, arguments) in unsent)
        {
            InBackground(script, now, arguments);
        }

        // A store that Redis lost in a restart is noticed, made again and the tickets held in it ended now, not at
        // the next request or heartbeat.
        InBackground(QueueScripts.Sweep, Now);
    }

    /// <summary>Applies a changing script's reply: its events for tickets held here, and its change announcement.</summary>
    private void Settle(RedisResult[] results, DateTimeOffset now)
    {
        foreach (var message in (RedisResult[])results[1]!)
        {
            Apply((string)message!, now);
        }

        if ((int)results[0] == 1)
        {
            _changes.Changed(now);
        }
    }

    private void OnEvent(string message)
    {
        if (message.StartsWith("M\n", StringComparison.Ordinal))
        {
            TaskCompletionSource? marker;
            lock (_gate)
            {
                _markers.Remove(message, out marker);
            }

            marker?.TrySetResult();
            return;
        }

        Apply(message, null);
    }

    private void OnChangeMessage(string message)
    {
        var parts = message.Split('\n', 2);
        if (parts.Length == 2 && parts[0] != _replica)
        {
            // Another replica's change, timed by its clock but never later than now.
            var at = Instant(Number(parts[1]));
            var now = Now;
            _changes.Changed(at < now ? at : now);
        }
    }

    /// <summary>
    /// Applies one event of the store to the ticket held here: D (dispatched), E (ended while waiting, or its run
    /// lost with this replica's lease), A (asked to abort). <paramref name="at"/> is the instant of the operation
    /// whose reply carried it, exact to the tick; events from other replicas carry their instant in microseconds.
    /// </summary>
    private void Apply(string message, DateTimeOffset? at)
    {
        char kind = message[0];
        var parts = message.Split('\n', kind switch { 'D' => 8, 'E' => 5, _ => 3 });
        string id = parts[^1];
        long sequence = long.Parse(parts[1], CultureInfo.InvariantCulture);
        TaskCompletionSource<Dispatch>? source = null;
        Dispatch result = default;
        CancellationTokenSource? abort = null;
        lock (_gate)
        {
            if (!_held.TryGetValue(id, out var ticket) || ticket.Sequence != sequence)
            {
                if (at is null && !_disposed)
                {
                    if (!_early.TryGetValue(id, out var early))
                    {
                        _early[id] = early = [];
                    }

                    early.Add((message, Now.UtcTicks));
                }

                return;
            }

            switch (kind)
            {
                case 'D' when ticket.State == TicketState.Waiting && int.Parse(parts[2], CultureInfo.InvariantCulture) == ticket.Attempts + 1:
                    var startedAt = at ?? Instant(Number(parts[4]));
                    var lease = new RedisLease(this, ticket, parts[6], startedAt, parts[3] == "1", ticket.Attempts + 1);
                    ticket.Run(lease, at ?? Instant(Number(parts[5])));
                    source = ticket.DispatchSource;
                    result = Dispatch.Started(lease);
                    break;
                case 'E' when ticket.State == TicketState.Waiting:
                    var outcome = (TicketOutcome)int.Parse(parts[2], CultureInfo.InvariantCulture);
                    ticket.End(outcome, at ?? Instant(Number(parts[3])));
                    Forget(ticket);
                    source = ticket.DispatchSource;
                    result = Dispatch.Ended(outcome);
                    break;
                case 'E' when ticket.State == TicketState.Running:
                    // Its slot was taken back (this replica's lease ran out): stop the run, whose end is now moot.
                    ticket.End(TicketOutcome.Failed, at ?? Instant(Number(parts[3])));
                    Forget(ticket);
                    abort = ticket.AbortSource;
                    break;
                case 'A' when ticket.State == TicketState.Running:
                    abort = ticket.AbortSource;
                    break;
            }
        }

        source?.TrySetResult(result);
        abort?.Cancel();
    }

    private void Register(RedisTicket ticket)
    {
        List<(string Message, long ReceivedAt)>? early;
        lock (_gate)
        {
            if (ticket.Store != _store)
            {
                // Its store was lost between its admission and now, and the recovery did not see it yet.
                ticket.End(TicketOutcome.Failed, Now);
                ticket.DispatchSource.TrySetResult(Dispatch.Ended(TicketOutcome.Failed));
                return;
            }

            _held[ticket.Id] = ticket;
            TrackDeadlineLocked(ticket);
            _early.Remove(ticket.Id, out early);
        }

        if (early is not null)
        {
            foreach (var (message, _) in early)
            {
                Apply(message, null);
            }
        }
    }

    private void Forget(RedisTicket ticket)
    {
        if (_held.TryGetValue(ticket.Id, out var held) && ReferenceEquals(held, ticket))
        {
            _held.Remove(ticket.Id);
        }
    }

    private RedisTicket Own(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return ticket is RedisTicket own && ReferenceEquals(own.Queue, this)
            ? own
            : throw new ArgumentException($"Ticket '{ticket.Id}' was not admitted by this queue.", nameof(ticket));
    }

    private async Task<Dispatch> WaitCancellablyAsync(RedisTicket ticket, Task<Dispatch> dispatched, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static (state, _) =>
        {
            var (queue, t) = ((RedisRequestQueue, RedisTicket))state!;
            queue.InBackground(QueueScripts.Cancel, queue.Now, t.Id, t.Sequence);
        }, (this, ticket)))
        {
            return await dispatched.ConfigureAwait(false);
        }
    }

    // Deadlines of the tickets held here: the timer wakes a sweep, which ends every waiting ticket past its
    // deadline whoever holds it. Entries of tickets that ran or ended are stale and skipped.
    private void TrackDeadlineLocked(RedisTicket ticket)
    {
        long due = ticket.Deadline.UtcTicks;
        _deadlines.Enqueue(ticket, due);
        if (due < _armed)
        {
            ArmLocked(due);
        }
    }

    private void ArmLocked(long due)
    {
        _armed = due;
        // At least one tick ahead: a timer due now could fire on this thread while the lock is held.
        _deadlineTimer.Change(TimeSpan.FromTicks(Math.Max(due - Now.UtcTicks, 1)), Timeout.InfiniteTimeSpan);
    }

    private void OnDeadline()
    {
        var now = Now;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _armed = long.MaxValue;
            while (_deadlines.TryPeek(out var ticket, out long due))
            {
                bool current = ticket.State == TicketState.Waiting && ticket.Deadline.UtcTicks == due;
                if (current && due > now.UtcTicks)
                {
                    ArmLocked(due);
                    break;
                }

                _deadlines.Dequeue();
            }
        }

        InBackground(QueueScripts.Sweep, now);
    }

    private void OnHeartbeat()
    {
        var now = Now;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            // Events for tickets never registered here (their admission failed on the way back) are dropped after
            // a lease duration: by then the store has ended those tickets.
            long stale = (now - _leaseDuration).UtcTicks;
            foreach (var (id, early) in _early.ToList())
            {
                early.RemoveAll(e => e.ReceivedAt < stale);
                if (early.Count == 0)
                {
                    _early.Remove(id);
                }
            }
        }

        InBackground(QueueScripts.Sweep, now);
    }

    private void RequireBackend(string backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (!_backends.Any(b => b.Name == backend))
        {
            throw new ArgumentException($"No backend is named '{backend}'.", nameof(backend));
        }
    }

    private Refusal Refusal(TicketRequest request, RefusalReason reason, double milliseconds, double count, double limit, TimeSpan maxWait)
    {
        var retry = Duration(milliseconds);
        switch (reason)
        {
            case RefusalReason.DuplicateId:
                return new(reason, $"A request with id '{request.Id}' is already admitted.", null);
            case RefusalReason.UnknownModel:
                return new(reason, $"No backend serves model '{request.Model}'.", null);
            case RefusalReason.NoHealthyBackend:
                return new(reason, $"No healthy backend serves model '{request.Model}' right now.", _options.NoBackendRetryAfter);
            case RefusalReason.UserInFlightLimit:
                return new(reason, $"You already have {count} requests in flight; the limit is {limit}.", retry);
            case RefusalReason.UserQueueFull:
                return new(reason, $"You already have {count} requests waiting; the limit is {limit}.", retry);
            case RefusalReason.QueueFull:
                return new(reason, $"The queue is full ({count} waiting).", retry);
            default:
                var estimate = retry;
                var after = estimate - maxWait;
                return new(reason,
                    $"The estimated wait ({estimate.TotalSeconds:0} s) is longer than this request may wait ({maxWait.TotalSeconds:0} s).",
                    after < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : after);
        }
    }

    private static void Validate(TicketRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
    }

    private TimeSpan MaxWaitFor(TimeSpan? requested) =>
        requested is { } wait && wait > TimeSpan.Zero && wait < _options.MaxWait ? wait : _options.MaxWait;

    private static QueueCounts Counts(Dictionary<string, double> meta) => new(
        (int)Field(meta, "waiting"), (int)Field(meta, "running"), (long)Field(meta, "admitted"),
        (long)Field(meta, "ended0"), (long)Field(meta, "ended1"), (long)Field(meta, "ended2"), (long)Field(meta, "ended3"),
        (long)Field(meta, "refused"), (long)Field(meta, "requeued"));

    private static Dictionary<string, double> Fields(RedisResult flat)
    {
        var items = (RedisResult[])flat!;
        var fields = new Dictionary<string, double>(items.Length / 2, StringComparer.Ordinal);
        for (int i = 0; i < items.Length; i += 2)
        {
            fields[(string)items[i]!] = Number(items[i + 1]);
        }

        return fields;
    }

    private static double Field(Dictionary<string, double> fields, string name) => fields.TryGetValue(name, out double value) ? value : 0;

    private static RedisValue Optional(int? value) => value is { } number ? number : "";

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static double Number(RedisResult result) => Number((string)result!);

    private static double Number(string text) => text switch
    {
        "inf" => double.PositiveInfinity,
        "-inf" => double.NegativeInfinity,
        _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    private static TimeSpan Duration(double milliseconds) =>
        double.IsPositiveInfinity(milliseconds) || milliseconds >= TimeSpan.MaxValue.TotalMilliseconds ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(milliseconds);

    /// <summary>An instant as the scripts keep it: whole microseconds since the Unix epoch, exact in a Lua number.</summary>
    private static long Micros(DateTimeOffset instant) => (instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private static long Micros(TimeSpan duration) => duration.Ticks / 10;

    private static DateTimeOffset Instant(double micros) => new(DateTimeOffset.UnixEpoch.UtcTicks + ((long)micros * 10), TimeSpan.Zero);
}
