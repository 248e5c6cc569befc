using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Requests;

/// <summary>
/// Where every request arrives: the admission policy (<see cref="AdmissionPolicy"/>) admits or refuses it at once,
/// and a refusal is recorded (<see cref="RequestSettlement.Refused"/>).
/// An admitted one lives apart from the connection that brought it — which holds it from the first moment, so a
/// client that leaves at any point after admission stops it (or starts its reconnect grace) — and is handed to
/// <see cref="RequestLife"/>, which runs it and ends it.
/// </summary>
internal sealed class Reception(
    AdmissionPolicy policy,
    RequestSettlement settlement,
    IRequestRegistry registry,
    IEventLogFactory eventLogs,
    RequestLife life,
    IRequestQueue queue,
    Draining draining,
    IOptions<AnteroomOptions> options,
    TimeProvider time)
{
    private readonly string _defaultModel = options.Value.DefaultModel ?? options.Value.Backends[0].Models[0];
    private readonly long _maxBufferedBytes = options.Value.Stream.MaxBufferedBytes;

    public string DefaultModel => _defaultModel;

    public TimeSpan MaxReconnectGrace { get; } = TimeSpan.FromSeconds(options.Value.Stream.MaxReconnectGraceSeconds);

    /// <summary>
    /// Admits or refuses the request. It takes no cancellation token: an admission torn half-way would leave a
    /// ticket in the queue with nobody to hold it, while a client that leaves right after is seen by the hold
    /// taken at once.
    /// </summary>
    public async ValueTask<Reply> AdmitAsync(Arrival ask)
    {
        string id = IRequestRegistry.NewId();
        if (draining.IsDraining)
        {
            settlement.Refused(id, ask, Draining.Refusal);
            return new Reply(null, null, Draining.Refusal, null);
        }

        var admitted = await policy.AdmitAsync(id, ask);
        if (admitted.Ticket is not { } ticket)
        {
            settlement.Refused(id, ask, admitted.Denial!);
            return new Reply(null, null, admitted.Denial, admitted.Rates);
        }

        ask = admitted.Arrival;
        var grace = ask.ReconnectGrace < MaxReconnectGrace ? ask.ReconnectGrace : MaxReconnectGrace;
        // A non-streaming relayed answer is written from its whole log once it ends, so its log keeps everything;
        // the output ceiling bounds it. Every other log is a stream's, bounded for a reader that falls behind.
        // A whole relayed answer is kept whole: its client needs all of it, so nothing may be dropped. It is bounded
        // all the same — the backend client refuses an answer over MaxAnswerBytes, and the queue events before it
        // are bounded by the longest wait at one per PositionUpdateMilliseconds.
        long buffer = ask.Relay is { Streaming: false } ? long.MaxValue : _maxBufferedBytes;
        var request = new LiveRequest(ticket, ask with { ReconnectGrace = grace }, time, eventLogs.Create(id, buffer));
        // Held before anything can await: a hold taken later (when the answer starts) misses a client that leaves
        // in between, and then nothing ever detaches, so the ticket would wait on with nobody to answer.
        var hold = request.Attach();
        await registry.AddAsync(request);
        life.Start(request, admitted.Limit);
        return new Reply(request, hold, null, admitted.Rates);
    }

    /// <summary>
    /// Takes over a native chat another replica admitted, whose replica died while it waited, for its owner who came
    /// back here within its grace: its ticket keeps its place (<see cref="IRequestQueue.AdoptAsync"/>), its log goes
    /// on with the next ids, and it runs from here as if admitted here. Null when it cannot be taken over: not the
    /// owner, not a chat that may be resumed, or its ticket no longer waits for a new holder.
    /// </summary>
    public async ValueTask<(LiveRequest Request, LiveRequest.Attachment Hold)?> AdoptAsync(SharedRequest shared, Caller owner)
    {
        if (draining.IsDraining || shared.Adoption is not { } adoption || !string.Equals(owner.Owner, shared.Owner, StringComparison.Ordinal)
            || await queue.AdoptAsync(shared.Id) is not { } ticket)
        {
            return null;
        }

        IEventLog? log;
        try
        {
            log = await eventLogs.TakeOverAsync(shared.Id, _maxBufferedBytes);
        }
        catch
        {
            // The ticket is held here now: without a request to run it, it must not keep its place (or a slot).
            await queue.CancelAsync(shared.Id);
            throw;
        }

        if (log is null)
        {
            // Its log ended or expired meanwhile: there is nobody left to tell, so nothing to run.
            await queue.CancelAsync(shared.Id);
            return null;
        }

        var arrival = adoption.ToArrival(owner);
        var request = new LiveRequest(ticket, arrival, time, log);
        var hold = request.Attach();
        await registry.AddAsync(request);
        life.Start(request, new RateLimit(owner.Tier.RequestsPerMinute, owner.Tier.TokensPerMinute));
        return (request, hold);
    }
}
