using System.Collections.Concurrent;
using System.Globalization;
using Anteroom.Shared;
using StackExchange.Redis;

namespace Anteroom.Requests;

/// <summary>
/// Opens event logs kept in Redis: the logs of requests this replica runs (<see cref="RedisEventLog"/>), and those
/// of requests another replica runs (<see cref="RedisEventLogReader"/>).
/// </summary>
/// <remarks>
/// A request's log is a stream <c>{prefix}:ev:{id}</c> whose entry ids are the event ids (<c>7-0</c> is event 7),
/// each entry one field holding the event (<see cref="RequestEventCodec"/>); beside it a hash <c>{prefix}:ev:{id}:m</c>
/// with the window (first kept id, last id, bytes, closed), the byte budget and the follower count. Every write
/// changes both in one script and then publishes the new window on <c>{prefix}:ev:{id}:n</c>, which is how readers
/// on other replicas are woken. A closed log expires <see cref="Retain"/> after its end; an open one a day after its
/// last write, so that the log of a replica that died does not stay forever.
/// <para>
/// The scripts name every key they touch, so the two keys of a log could live on a Redis Cluster if they shared a
/// hash slot; the rate limiter's sweep does not allow that, so Redis mode runs on a single Redis.
/// </para>
/// </remarks>
internal sealed class RedisEventLogFactory : IEventLogFactory
{
    /// <summary>How long an open log outlives its last write: far longer than any request waits or runs.</summary>
    private static readonly TimeSpan OpenExpiry = TimeSpan.FromDays(1);

    /// <summary>
    /// KEYS: stream, meta. ARGV: last id sent before, mode (a = append, r = reset, k = only if kept, t = take over:
    /// reset as the log's writer from now on, c = close: append as its writer from now on), first kept, last,
    /// bytes, closed (0/1), followers (a change; the count when resetting), expiry when open (ms), when closed (ms),
    /// channel, byte budget, writer, then id and event pairs. Returns 0 when Redis lost the log, 2 when another
    /// writer took it over.
    /// </summary>
    private const string WriteScript = """
        local stream, meta = KEYS[1], KEYS[2]
        local mode = ARGV[2]
        local m = redis.call('HMGET', meta, 'last', 'w')
        local stored = m[1]
        if mode == 'k' and not stored then
          return 1
        end
        if m[2] and m[2] ~= ARGV[12] and mode ~= 't' and mode ~= 'c' then
          return 2
        end
        if mode == 't' then
          mode = 'r'
        end
        if mode == 'r' then
          redis.call('DEL', stream)
        elseif (stored and tonumber(stored) or 0) ~= tonumber(ARGV[1]) then
          return 0
        end
        for i = 13, #ARGV, 2 do
          redis.call('XADD', stream, ARGV[i] .. '-0', 'e', ARGV[i + 1])
        end
        if tonumber(ARGV[3]) > 1 then
          redis.call('XTRIM', stream, 'MINID', ARGV[3] .. '-0')
        end
        redis.call('HSET', meta, 'first', ARGV[3], 'last', ARGV[4], 'bytes', ARGV[5], 'closed', ARGV[6], 'max', ARGV[11], 'w', ARGV[12])
        if mode == 'r' then
          redis.call('HSET', meta, 'followers', ARGV[7])
        elseif ARGV[7] ~= '0' then
          redis.call('HINCRBY', meta, 'followers', ARGV[7])
        end
        local expiry = ARGV[6] == '1' and ARGV[9] or ARGV[8]
        redis.call('PEXPIRE', stream, expiry)
        redis.call('PEXPIRE', meta, expiry)
        redis.call('PUBLISH', ARGV[10], ARGV[4] .. ' ' .. ARGV[3] .. ' ' .. ARGV[6])
        return 1
        """;

    /// <summary>
    /// KEYS: stream, meta. ARGV: after id. Returns {-1} when the log is not kept, {0} when events after the id are
    /// dropped, else {1, closed, entries}.
    /// </summary>
    private const string ReadScript = """
        local m = redis.call('HMGET', KEYS[2], 'first', 'last', 'closed')
        if not m[1] then
          return { -1 }
        end
        local after = math.max(tonumber(ARGV[1]), 0)
        if after < tonumber(m[1]) - 1 then
          return { 0 }
        end
        local entries = {}
        if after < tonumber(m[2]) then
          entries = redis.call('XRANGE', KEYS[1], string.format('%d-0', after + 1), '+')
        end
        return { 1, tonumber(m[3]), entries }
        """;

    /// <summary>KEYS: meta. ARGV: change. Counts a reader on another replica, unless the log is gone (then nothing is created).</summary>
    private const string FollowScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then
          return redis.call('HINCRBY', KEYS[1], 'followers', ARGV[1])
        end
        return 0
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly string _prefix;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<RedisEventLog, byte> _stalled = new();

    public RedisEventLogFactory(IConnectionMultiplexer redis, string prefix, TimeSpan retain, TimeProvider time)
    {
        _redis = redis;
        _prefix = prefix;
        Retain = retain;
        _time = time;
        // The multiplexer reconnects by itself; the logs whose pumps stopped meanwhile start again then.
        redis.ConnectionRestored += (_, _) => ResumeStalled();
    }

    /// <summary>How long a closed log is kept (the replay window).</summary>
    public TimeSpan Retain { get; }

    internal enum WriteMode
    {
        /// <summary>Adds to what the stream has; refused when it does not have what was sent last.</summary>
        Append,

        /// <summary>Replaces the stream with the whole window.</summary>
        Reset,

        /// <summary>Changes the follower count of a closed log, unless it has expired.</summary>
        OnlyIfKept,

        /// <summary>Replaces the stream with the whole window, as its writer from now on (whoever wrote it before).</summary>
        TakeOver,

        /// <summary>Adds the ending of a log whose writer is gone, as its writer from now on.</summary>
        Close,
    }

    /// <summary>What came of a write.</summary>
    internal enum WriteResult
    {
        Written,

        /// <summary>Redis no longer has what was sent before (it restarted empty): send the whole window again.</summary>
        Lost,

        /// <summary>Another writer took the log over (this one was taken for gone): write no more.</summary>
        Disowned,
    }

    /// <summary>What a log's pump sends: the window after the batch, the batch, and the follower change.</summary>
    internal readonly record struct Write(LogWindow Window, List<StreamEvent> Events, int Followers, long SentLastId, WriteMode Mode, long MaxBytes, string Writer);

    /// <inheritdoc />
    public IEventLog Create(string requestId, long maxBytes) => new RedisEventLog(this, requestId, maxBytes, _time);

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask<IEventLog?> OpenAsync(string requestId, CancellationToken cancellationToken = default)
    {
        var max = await SharedState.CallAsync(_redis, () => Database.HashGetAsync(MetaKey(requestId), "max"));
        return max.IsNull ? null : new RedisEventLogReader(this, requestId, (long)max, _time);
    }

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask<IEventLog?> TakeOverAsync(string requestId, long maxBytes, CancellationToken cancellationToken = default)
    {
        // A write between reading the window and the events (there should be none: the writer is gone) drops the
        // first events asked for; then look again.
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (await GetWindowAsync(requestId) is not { IsComplete: false } window)
            {
                return null;
            }

            var taken = new List<StreamEvent>();
            var (read, kept) = await ReadAsync(requestId, window.FirstKeptId - 1, taken);
            if (!kept)
            {
                return null;
            }

            if (read != LogRead.Dropped)
            {
                return read == LogRead.Complete ? null : new RedisEventLog(this, requestId, maxBytes, _time, taken);
            }
        }

        return null;
    }

    /// <inheritdoc />
    /// <exception cref="SharedStateUnavailableException">Redis cannot be reached.</exception>
    public async ValueTask CloseAbandonedAsync(string requestId, RequestEnding ending, CancellationToken cancellationToken = default)
    {
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (await GetWindowAsync(requestId) is not { IsComplete: false } window)
            {
                return;
            }

            var max = await SharedState.CallAsync(_redis, () => Database.HashGetAsync(MetaKey(requestId), "max"));
            long last = window.LastId + 1;
            var closed = new LogWindow(Math.Min(window.FirstKeptId, last), last, window.BufferedBytes + ending.Size, true);
            var write = new Write(closed, [new StreamEvent(last, ending)], 0, window.LastId, WriteMode.Close, max.IsNull ? long.MaxValue : (long)max, NewWriter());
            if (await WriteAsync(requestId, write) != WriteResult.Lost)
            {
                return;
            }
        }
    }

    internal IDatabase Database => _redis.GetDatabase();

    internal ISubscriber Subscriber => _redis.GetSubscriber();

    internal IConnectionMultiplexer Connection => _redis;

    internal RedisKey StreamKey(string requestId) => $"{_prefix}:ev:{requestId}";

    internal RedisKey MetaKey(string requestId) => $"{_prefix}:ev:{requestId}:m";

    internal RedisChannel Channel(string requestId) => RedisChannel.Literal($"{_prefix}:ev:{requestId}:n");

    /// <summary>Sends one batch of a log.</summary>
    internal async Task<WriteResult> WriteAsync(string requestId, Write write)
    {
        var args = new RedisValue[12 + 2 * write.Events.Count];
        args[0] = write.SentLastId;
        args[1] = write.Mode switch
        {
            WriteMode.Reset => "r",
            WriteMode.OnlyIfKept => "k",
            WriteMode.TakeOver => "t",
            WriteMode.Close => "c",
            _ => "a",
        };
        args[2] = write.Window.FirstKeptId;
        args[3] = write.Window.LastId;
        args[4] = write.Window.BufferedBytes;
        args[5] = write.Window.IsComplete ? 1 : 0;
        args[6] = write.Followers;
        args[7] = (long)OpenExpiry.TotalMilliseconds;
        args[8] = Math.Max(1, (long)Retain.TotalMilliseconds);
        args[9] = Channel(requestId).ToString();
        args[10] = write.MaxBytes;
        args[11] = write.Writer;
        var encoding = new MemoryStream();
        for (int i = 0; i < write.Events.Count; i++)
        {
            args[12 + 2 * i] = write.Events[i].Id;
            args[13 + 2 * i] = RequestEventCodec.Encode(write.Events[i].Event, encoding);
        }

        RedisKey[] keys = [StreamKey(requestId), MetaKey(requestId)];
        var result = await SharedState.CallAsync(_redis, () => Database.ScriptEvaluateAsync(WriteScript, keys, args));
        return (long)result switch { 1 => WriteResult.Written, 2 => WriteResult.Disowned, _ => WriteResult.Lost };
    }

    /// <summary>A writer's mark on the logs it writes: whoever takes a log over puts its own.</summary>
    internal static string NewWriter() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    internal Task<int> CountFollowersAsync(string requestId) =>
        SharedState.CallAsync(_redis, async () =>
        {
            var followers = await Database.HashGetAsync(MetaKey(requestId), "followers");
            return followers.IsNull ? 0 : (int)followers;
        });

    /// <summary>Reads the events after an id; a log no longer kept (expired, or lost with Redis) reads as dropped, and not kept.</summary>
    internal async Task<(LogRead Read, bool Kept)> ReadAsync(string requestId, long afterId, List<StreamEvent> into)
    {
        var result = (RedisResult[])(await SharedState.CallAsync(_redis, () => Database.ScriptEvaluateAsync(
            ReadScript, [StreamKey(requestId), MetaKey(requestId)], [afterId])))!;
        long status = (long)result[0];
        if (status <= 0)
        {
            return (LogRead.Dropped, status == 0);
        }

        foreach (RedisResult entry in (RedisResult[])result[2]!)
        {
            var parts = (RedisResult[])entry!;
            string id = (string)parts[0]!;
            var fields = (RedisResult[])parts[1]!;
            into.Add(new StreamEvent(
                long.Parse(id.AsSpan(0, id.IndexOf('-')), CultureInfo.InvariantCulture),
                RequestEventCodec.Decode((byte[])fields[1]!)));
        }

        return ((long)result[1] == 1 ? LogRead.Complete : LogRead.Open, true);
    }

    internal Task<LogWindow?> GetWindowAsync(string requestId) => SharedState.CallAsync(_redis, async () =>
    {
        var values = await Database.HashGetAsync(MetaKey(requestId), ["first", "last", "bytes", "closed"]);
        return values[0].IsNull
            ? (LogWindow?)null
            : new LogWindow((long)values[0], (long)values[1], (long)values[2], (long)values[3] == 1);
    });

    /// <summary>Counts a reader on this replica of a log another one writes; sent without waiting for the answer.</summary>
    internal void ChangeRemoteFollowers(string requestId, int change)
    {
        SharedState.EnsureConnected(_redis);
        Database.ScriptEvaluate(FollowScript, [MetaKey(requestId)], [change], CommandFlags.FireAndForget);
    }

    /// <summary>Remembers a log whose pump stopped on <paramref name="failure"/>, to start it again when Redis is back.</summary>
    internal void Stalled(RedisEventLog log, Exception failure)
    {
        _stalled[log] = 0;
        // Redis may have come back between the failure and now, with nobody left to say so. (A failure of another
        // kind waits for the next reconnection rather than being retried in a loop.)
        if (_redis.IsConnected && failure is SharedStateUnavailableException)
        {
            ResumeStalled();
        }
    }

    private void ResumeStalled()
    {
        foreach (var log in _stalled.Keys)
        {
            if (_stalled.TryRemove(log, out _))
            {
                log.Resume();
            }
        }
    }
}
