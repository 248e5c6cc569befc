using System.Globalization;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Redis;

// Talking to the store: making or finding it, running scripts in it (failing fast while Redis is out of reach),
// recovering a store Redis lost, writing in the background, and reading the values the scripts return.
internal sealed partial class RedisRequestQueue
{
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

    /// <summary>A duration as the scripts keep it, in microseconds; beyond what a TimeSpan holds it is the longest one.</summary>
    private static TimeSpan Span(double micros) =>
        micros >= TimeSpan.MaxValue.Ticks / 10 ? TimeSpan.MaxValue : TimeSpan.FromTicks((long)micros * 10);

    private static DateTimeOffset Instant(double micros) => new(DateTimeOffset.UnixEpoch.UtcTicks + ((long)micros * 10), TimeSpan.Zero);
}
