using System.Text;
using Anteroom.Backends;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>How a request ended, as its holder was told.</summary>
internal sealed record RequestEnding(string Type, byte[] Data);

/// <summary>
/// One admitted request, alive independently of any connection: its ticket, the generation to run and the
/// event log its holders read. It stops when asked (<c>DELETE</c>) or when no client has been connected for
/// its reconnect grace period — zero unless the client asked for one, so a client that leaves stops the work.
/// </summary>
internal sealed class LiveRequest
{
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<RequestEnding> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider _time;
    private int _attached;
    private ITimer? _graceTimer;
    private string? _stopReason;

    public LiveRequest(Ticket ticket, GenerationRequest generation, TimeSpan reconnectGrace, TimeProvider time)
    {
        Ticket = ticket;
        Generation = generation;
        ReconnectGrace = reconnectGrace;
        _time = time;
    }

    public string Id => Ticket.Id;

    public string Owner => Ticket.Owner;

    public Ticket Ticket { get; }

    public GenerationRequest Generation { get; }

    public TimeSpan ReconnectGrace { get; }

    public EventLog Events { get; } = new();

    /// <summary>The answer so far.</summary>
    public StringBuilder Text { get; } = new();

    /// <summary>Cancelled when the request must stop.</summary>
    public CancellationToken Stopping => _stop.Token;

    /// <summary>Why it was stopped: <c>cancelled_by_user</c> or <c>client_disconnected</c>.</summary>
    public string StopReason => Volatile.Read(ref _stopReason) ?? "cancelled";

    /// <summary>Completes with the terminal event once the request has ended.</summary>
    public Task<RequestEnding> Ended => _ended.Task;

    public DateTimeOffset? EndedAt { get; private set; }

    public void Stop(string reason)
    {
        Interlocked.CompareExchange(ref _stopReason, reason, null);
        _stop.Cancel();
    }

    /// <summary>Records the terminal event (exactly once) and closes the log.</summary>
    public void End(string type, byte[] data)
    {
        EndedAt = _time.GetUtcNow();
        Events.Append(type, data, final: true);
        lock (_gate)
        {
            _graceTimer?.Dispose();
            _graceTimer = null;
        }

        _ended.TrySetResult(new RequestEnding(type, data));
    }

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
                _graceTimer = _time.CreateTimer(
                    static state => ((LiveRequest)state!).Stop("client_disconnected"), this, ReconnectGrace, Timeout.InfiniteTimeSpan);
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
