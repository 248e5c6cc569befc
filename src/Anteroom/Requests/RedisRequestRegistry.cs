using System.Globalization;
using Anteroom.Identity;
using Anteroom.Shared;
using StackExchange.Redis;

namespace Anteroom.Requests;

/// <summary>
/// The registry of a replica in Redis mode: its own requests in memory, as a single gateway keeps them, and a record
/// of each in Redis so that every other replica can find it, show its status, follow it and stop it.
/// </summary>
/// <remarks>
/// <para>
/// Layout, under the deployment's prefix: a hash <c>rq:{id}</c> per request (owner, model, replica, creation, its
/// conversation, and for a native chat with a reconnect grace what another replica needs to run it; its ending once
/// it has one), a sorted set <c>rq:by:{owner}</c> of an owner's ids by creation, a key <c>rq:live:{replica}</c> per
/// replica that lives while the replica renews it (every third of the lease), and a channel
/// <c>rq:stop:{replica}</c> on which a replica hears what to stop.
/// </para>
/// <para>
/// Records are written without waiting for the answer, behind the admission that made them: a client reconnecting
/// to another replica comes a round trip later at the earliest. A record lives a day while its request runs (so a
/// replica that dies leaves nothing for ever), and the replay window once it has ended.
/// </para>
/// </remarks>
internal sealed partial class RedisRequestRegistry : IRequestRegistry, IAsyncDisposable
{
    private static readonly TimeSpan LiveExpiry = TimeSpan.FromDays(1);

    /// <summary>The most of an owner's requests on other replicas a listing reads: the newest.</summary>
    private const int MaxListed = 100;

    /// <summary>KEYS: record, owner's set. ARGV: fields and values..., creation (ms), expiry (ms), oldest kept (ms).</summary>
    private const string AddScript = """
        local n = #ARGV
        redis.call('HSET', KEYS[1], unpack(ARGV, 1, n - 3))
        redis.call('PEXPIRE', KEYS[1], ARGV[n - 1])
        redis.call('ZADD', KEYS[2], ARGV[n - 2], ARGV[2])
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[n])
        redis.call('PEXPIRE', KEYS[2], ARGV[n - 1])
        return 1
        """;

    /// <summary>
    /// KEYS: record. ARGV: the replica ending it, fields and values..., expiry (ms). Updates a record still kept, and
    /// only from the replica that runs the request: one that was taken for dead and had its request taken over
    /// must not end it for everyone.
    /// </summary>
    private const string EndScript = """
        if redis.call('HGET', KEYS[1], 'r') ~= ARGV[1] then
          return 0
        end
        local n = #ARGV
        redis.call('HSET', KEYS[1], unpack(ARGV, 2, n - 1))
        redis.call('PEXPIRE', KEYS[1], ARGV[n])
        return 1
        """;

    /// <summary>KEYS: record. ARGV: prefix of replicas' life keys. Returns the record's fields and whether its replica lives.</summary>
    private const string FindScript = """
        local fields = redis.call('HGETALL', KEYS[1])
        if #fields == 0 then
          return { 0 }
        end
        local replica = redis.call('HGET', KEYS[1], 'r')
        return { redis.call('EXISTS', ARGV[1] .. replica), fields }
        """;

    private readonly InProcessRequestRegistry _local = new();
    private readonly IConnectionMultiplexer _redis;
    private readonly string _prefix;
    private readonly TimeSpan _lease;
    private readonly TimeSpan _retain;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisRequestRegistry> _log;
    private readonly ITimer _heartbeat;
    private readonly Task _listening;

    public RedisRequestRegistry(
        IConnectionMultiplexer redis, string prefix, string replica, TimeSpan lease, TimeSpan retain, TimeProvider time, ILogger<RedisRequestRegistry> log)
    {
        _redis = redis;
        _prefix = prefix;
        Replica = replica;
        _lease = lease;
        _retain = retain;
        _time = time;
        _log = log;
        // The first sign of life goes ahead of anything recorded here.
        Beat();
        _heartbeat = time.CreateTimer(static state => ((RedisRequestRegistry)state!).Beat(), this, lease / 3, lease / 3);
        _listening = redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(StopChannel(replica)), (_, message) => OnStop(message));
    }

    /// <summary>This replica's id.</summary>
    public string Replica { get; }

    private IDatabase Database => _redis.GetDatabase();

    /// <inheritdoc />
    /// <remarks>
    /// Never fails for want of Redis: the request is admitted already and must run. Without its record (Redis went
    /// away between its admission and now) it is reached only through this replica, as a single gateway's would be.
    /// </remarks>
    public ValueTask AddAsync(LiveRequest request)
    {
        _ = _local.AddAsync(request);
        long created = request.CreatedAt.ToUnixTimeMilliseconds();
        var adoption = AdoptableArrival.Of(request.Arrival);
        var args = new List<RedisValue>(16)
        {
            "id", request.Id, "o", request.Owner, "m", request.Ticket.Model, "r", Replica, "c", created,
        };
        if (request.Arrival.Conversation is { } turn)
        {
            args.Add("cv");
            args.Add(turn.Id);
        }

        if (adoption is not null)
        {
            args.Add("a");
            args.Add(adoption.Encode());
        }

        args.Add(created);
        args.Add((long)LiveExpiry.TotalMilliseconds);
        args.Add(created - (long)LiveExpiry.TotalMilliseconds);
        try
        {
            Database.ScriptEvaluate(AddScript, [RecordKey(request.Id), OwnerKey(request.Owner)], [.. args], CommandFlags.FireAndForget);
        }
        catch (Exception e) when (SharedState.IsUnreachable(e))
        {
            LogNotRecorded(request.Id, e.Message);
        }

        _ = RecordEndingAsync(request);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<LiveRequest?> FindAsync(string id, Caller caller, CancellationToken cancellationToken = default) =>
        _local.FindAsync(id, caller, cancellationToken);

    /// <inheritdoc />
    public ValueTask<LiveRequest?> GetAsync(string id, CancellationToken cancellationToken = default) => _local.GetAsync(id, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<LiveRequest>> OwnedByAsync(string owner, CancellationToken cancellationToken = default) =>
        _local.OwnedByAsync(owner, cancellationToken);

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask<SharedRequest?> FindElsewhereAsync(string id, Caller caller, CancellationToken cancellationToken = default)
    {
        var shared = await ReadAsync(id);
        return shared is not null && !string.Equals(shared.Replica, Replica, StringComparison.Ordinal) && caller.MayActOn(shared.Owner) ? shared : null;
    }

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask<IReadOnlyList<SharedRequest>> OwnedElsewhereAsync(string owner, CancellationToken cancellationToken = default)
    {
        var ids = await SharedState.CallAsync(_redis, () => Database.SortedSetRangeByRankAsync(OwnerKey(owner), 0, MaxListed - 1, Order.Descending));
        // Read together: the multiplexer sends them in one go.
        var records = await Task.WhenAll(ids.Select(id => ReadAsync(id!)));
        var found = new List<SharedRequest>(records.Length);
        for (int i = 0; i < records.Length; i++)
        {
            if (records[i] is not { } shared)
            {
                // Its record expired (it ended longer ago than the replay window): its id goes too.
                _ = Database.SortedSetRemoveAsync(OwnerKey(owner), ids[i], CommandFlags.FireAndForget);
            }
            else if (!string.Equals(shared.Replica, Replica, StringComparison.Ordinal) && string.Equals(shared.Owner, owner, StringComparison.Ordinal))
            {
                found.Add(shared);
            }
        }

        return found;
    }

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask<bool> StopElsewhereAsync(SharedRequest request, string reason)
    {
        long heard = await SharedState.CallAsync(_redis, () => _redis.GetSubscriber().PublishAsync(
            RedisChannel.Literal(StopChannel(request.Replica)), reason + "\n" + request.Id));
        return heard > 0;
    }

    /// <inheritdoc />
    public ValueTask StopAllAsync(string reason) => _local.StopAllAsync(reason);

    /// <inheritdoc />
    public ValueTask StopWaitingAsync(string reason) => _local.StopWaitingAsync(reason);

    /// <inheritdoc />
    public ValueTask<int> SweepAsync(DateTimeOffset endedBefore) => _local.SweepAsync(endedBefore);

    public async ValueTask DisposeAsync()
    {
        await _heartbeat.DisposeAsync();
        try
        {
            await _listening;
            await _redis.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(StopChannel(Replica)));
        }
        catch (Exception e) when (SharedState.IsUnreachable(e))
        {
            // Redis is away: there is no subscription left to end.
        }
    }

    private RedisKey RecordKey(string id) => $"{_prefix}:rq:{id}";

    private RedisKey OwnerKey(string owner) => $"{_prefix}:rq:by:{owner}";

    private string LifePrefix => $"{_prefix}:rq:live:";

    private string StopChannel(string replica) => $"{_prefix}:rq:stop:{replica}";

    private async Task<SharedRequest?> ReadAsync(string id)
    {
        // Only a request id names a record: anything else (another key under the prefix) is no request.
        if (!IRequestRegistry.IsId(id))
        {
            return null;
        }

        var result = (RedisResult[])(await SharedState.CallAsync(_redis, () => Database.ScriptEvaluateAsync(FindScript, [RecordKey(id)], [LifePrefix])))!;
        if ((long)result[0] == 0 && result.Length == 1)
        {
            return null;
        }

        var fields = new Dictionary<string, RedisValue>(StringComparer.Ordinal);
        var flat = (RedisResult[])result[1]!;
        for (int i = 0; i + 1 < flat.Length; i += 2)
        {
            fields[(string)flat[i]!] = (RedisValue)flat[i + 1];
        }

        string Text(string field) => fields.TryGetValue(field, out var value) ? (string)value! : "";
        long Number(string field) => fields.TryGetValue(field, out var value) && value.TryParse(out long number) ? number : 0;

        SharedEnding? ending = fields.ContainsKey("s")
            ? new SharedEnding(Text("s"), DateTimeOffset.FromUnixTimeMilliseconds(Number("e")), fields.ContainsKey("b") ? Text("b") : null, (int)Number("n"), Number("w"), Number("l"))
            : null;
        return new SharedRequest(id, Text("o"), Text("m"), Text("r"), DateTimeOffset.FromUnixTimeMilliseconds(Number("c")))
        {
            ConversationId = fields.ContainsKey("cv") ? Text("cv") : null,
            ReplicaAlive = (long)result[0] == 1,
            Ending = ending,
            Adoption = ending is null && fields.TryGetValue("a", out var adoption) ? AdoptableArrival.Decode((byte[])adoption!) : null,
        };
    }

    /// <summary>Once the request has ended, records how, and keeps its record for the replay window only.</summary>
    private async Task RecordEndingAsync(LiveRequest request)
    {
        await request.Ended.ConfigureAwait(false);
        var ticket = request.Ticket;
        var window = await request.Events.GetWindowAsync().ConfigureAwait(false);
        var waitedUntil = ticket.FirstDispatchedAt ?? ticket.EndedAt ?? _time.GetUtcNow();
        try
        {
            SharedState.EnsureConnected(_redis);
            Database.ScriptEvaluate(
                EndScript,
                [RecordKey(request.Id)],
                [
                    Replica, "s", SharedEnding.StateOf(ticket), "e", (request.EndedAt ?? _time.GetUtcNow()).ToUnixTimeMilliseconds(),
                    "b", ticket.Backend ?? "", "n", ticket.Attempts, "w", GenerationRunner.Milliseconds(waitedUntil - ticket.ArrivedAt),
                    "l", window.LastId, Math.Max(1, (long)_retain.TotalMilliseconds),
                ],
                CommandFlags.FireAndForget);
        }
        catch (SharedStateUnavailableException)
        {
            // Redis is away: the record keeps saying the request runs until it expires, and its log tells the truth.
        }
    }

    /// <summary>Renews this replica's sign of life; it runs on a timer, where an exception would end the process.</summary>
    private void Beat()
    {
        try
        {
            if (_redis.IsConnected)
            {
                Database.StringSet(LifePrefix + Replica, 1, _lease, flags: CommandFlags.FireAndForget);
            }
        }
        catch (Exception e) when (SharedState.IsUnreachable(e))
        {
            // Shutting down, or Redis is away: the next beat tries again, and a lease outlives several missed beats.
        }
    }

    private void OnStop(RedisValue message)
    {
        string text = message!;
        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        if (newline < 0)
        {
            return;
        }

        string id = text[(newline + 1)..];
        if (_local.GetAsync(id).Result is { EndedAt: null } request)
        {
            LogStopped(id, text[..newline]);
            request.Stop(text[..newline]);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} runs, but could not be recorded in Redis for other replicas: {Reason}")]
    private partial void LogNotRecorded(string requestId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId} stopped from another replica ({Reason})")]
    private partial void LogStopped(string requestId, string reason);
}
