using System.Text;
using Anteroom.Backends;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>Why a request failed: a code, a message, and whether the client already saw the backend's own error.</summary>
internal sealed record RequestFailure(string Code, string Message, bool RelayedToClient = false)
{
    /// <summary>When trying again is worthwhile (a timeout's queue estimate).</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The status an API answers with when it can still choose one.</summary>
    public int HttpStatus => Code switch
    {
        "timeout" or "queue_lost" or Draining.Reason => StatusCodes.Status503ServiceUnavailable,
        "backend_error" or "answer_too_large" => StatusCodes.Status502BadGateway,
        _ => StatusCodes.Status500InternalServerError,
    };
}

/// <summary>
/// One admitted request, alive independently of any connection: its ticket, the generation to run and the
/// event log its holders read. It stops when asked (<c>DELETE</c>) or when no client has been connected for
/// its reconnect grace period — zero unless the client asked for one, so a client that leaves stops the work.
/// </summary>
/// <remarks>
/// In Redis mode a client may come back through another replica and follow the log from there; such readers are
/// counted with the log (<see cref="IEventLog.CountFollowersAsync"/>), so a grace that runs out while one follows
/// starts again instead of stopping the request. A request is therefore stopped at most two graces after its last
/// reader anywhere left.
/// </remarks>
internal sealed class LiveRequest : IFollowedRequest
{
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<RequestEnding> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider _time;
    private int _attached;
    private ITimer? _graceTimer;
    // Counts the graces started, so a grace that ran out is told apart from a newer one.
    private int _graces;
    private string? _stopReason;
    private RequestEnding? _ending;

    /// <summary>An admitted request; <paramref name="events"/> is its event log, an unbounded one in memory when none is given.</summary>
    public LiveRequest(Ticket ticket, Arrival arrival, TimeProvider time, IEventLog? events = null)
    {
        Ticket = ticket;
        Arrival = arrival;
        _time = time;
        CreatedAt = time.GetUtcNow();
        Events = events ?? new InProcessEventLog(time: time);
    }

    public string Id => Ticket.Id;

    public string Owner => Ticket.Owner;

    public Ticket Ticket { get; }

    /// <summary>What it arrived with; once it has ended, without its prompt (see <see cref="Arrival.WithoutPayload"/>).</summary>
    public Arrival Arrival { get; private set; }

    public GenerationRequest Generation => Arrival.Generation;

    public TimeSpan ReconnectGrace => Arrival.ReconnectGrace;

    public DateTimeOffset CreatedAt { get; }

    /// <summary>Who asked.</summary>
    public Identity.Caller Caller => Arrival.Caller;

    /// <summary>When its (last) attempt got a slot.</summary>
    public DateTimeOffset? StartedAt { get; set; }

    /// <summary>When the first generated token of the answer arrived.</summary>
    public DateTimeOffset? FirstTokenAt { get; set; }

    /// <summary>Tokens (or relayed pieces) generated so far, whatever the outcome.</summary>
    public int GeneratedTokens { get; set; }

    /// <summary>Token counts, once completed.</summary>
    public GenerationUsage? Usage { get; set; }

    /// <summary>Why the generation stopped, once completed.</summary>
    public string? FinishReason { get; set; }

    /// <summary>Waited, time to first token and generation time, once completed.</summary>
    public TimingsBody? Timings { get; set; }

    /// <summary>The vectors of a completed embedding request.</summary>
    public IReadOnlyList<float[]>? Embeddings { get; set; }

    /// <summary>Why it failed, once failed or timed out.</summary>
    public RequestFailure? Failure { get; set; }

    /// <summary>The upstream status a relayed request answered with; the responder may pass it on.</summary>
    public int? RelayedStatus { get; set; }

    /// <summary>The upstream content type a relayed request answered with.</summary>
    public string? RelayedContentType { get; set; }

    public IEventLog Events { get; }

    /// <summary>
    /// The backends this request has been counted on for their health. A request is one sample per backend: failed
    /// if its first attempt there that said anything about the backend failed, succeeded otherwise. Its retries are
    /// not new evidence (a backend failing 30 % of attempts would otherwise count a request that it served on the
    /// second try as a failure twice), but a request that the backend failed once and then served still counts as
    /// failed there: it was let down. Touched only by the request's runner, one attempt at a time.
    /// </summary>
    public HashSet<string> HealthSampled { get; } = new(StringComparer.Ordinal);

    /// <summary>The answer so far.</summary>
    public StringBuilder Text { get; } = new();

    /// <summary>Cancelled when the request must stop.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Why it was stopped: <c>cancelled_by_user</c> or <c>client_disconnected</c>.</summary>
    public string StopReason => Volatile.Read(ref _stopReason) ?? "cancelled";

    /// <summary>Completes with the terminal event once the request's end has been published.</summary>
    public Task<RequestEnding> Ended => _ended.Task;

    /// <summary>When it ended; set by <see cref="End"/>, before its holders are told.</summary>
    public DateTimeOffset? EndedAt { get; private set; }

    public void Stop(string reason)
    {
        Interlocked.CompareExchange(ref _stopReason, reason, null);
        _stop.Cancel();
    }

    /// <summary>
    /// Records how the request ended, exactly once. Its holders are told only by <see cref="Publish"/>, once what
    /// the ending settles (its tokens, its log entry, its conversation turn) is done: whoever sees the end sees those.
    /// </summary>
    public void End(RequestEnding ending)
    {
        if (_ending is not null)
        {
            throw new InvalidOperationException($"Request {Id} already ended ({_ending.Name}); cannot end it again ({ending.Name}).");
        }

        EndedAt = _time.GetUtcNow();
        _ending = ending;
    }

    /// <summary>
    /// Tells the holders how the request ended: appends the terminal event, closing the log, and completes
    /// <see cref="Ended"/>. What the ending settled no longer needs the prompt, so it is let go here.
    /// </summary>
    public void Publish()
    {
        var ending = _ending ?? throw new InvalidOperationException($"Request {Id} has not ended; there is nothing to publish.");
        Arrival = Arrival.WithoutPayload();
        Events.Append(ending);
        lock (_gate)
        {
            _graceTimer?.Dispose();
            _graceTimer = null;
        }

        _ended.TrySetResult(ending);
    }

    IDisposable IFollowedRequest.Attach() => Attach();

    /// <summary>A connection follows the request; dispose when it goes away.</summary>
    public Attachment Attach()
    {
        lock (_gate)
        {
            _attached++;
            _graceTimer?.Dispose();
            _graceTimer = null;
        }

        return new Attachment(this);
    }

    private void Detach()
    {
        lock (_gate)
        {
            if (--_attached > 0 || _ended.Task.IsCompleted)
            {
                return;
            }

            if (ReconnectGrace > TimeSpan.Zero)
            {
                StartGraceLocked();
                return;
            }
        }

        Stop("client_disconnected");
    }

    private void StartGraceLocked()
    {
        int grace = ++_graces;
        _graceTimer = _time.CreateTimer(
            state => _ = ((LiveRequest)state!).GraceEndedAsync(grace), this, ReconnectGrace, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// No client of this replica came back in time: stops the request unless a reader follows it from elsewhere, or
    /// a newer grace started while the readers were counted.
    /// </summary>
    private async Task GraceEndedAsync(int grace)
    {
        int followers;
        try
        {
            followers = await Events.CountFollowersAsync();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Nobody can be shown to follow it: the grace has run out.
            followers = 0;
        }

        lock (_gate)
        {
            if (_attached > 0 || _ended.Task.IsCompleted || grace != _graces)
            {
                return;
            }

            if (followers > 0)
            {
                _graceTimer?.Dispose();
                StartGraceLocked();
                return;
            }
        }

        Stop("client_disconnected");
    }

    /// <summary>A connection's hold on the request.</summary>
    internal sealed class Attachment(LiveRequest request) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                request.Detach();
            }
        }
    }
}
