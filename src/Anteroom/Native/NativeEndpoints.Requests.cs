using System.Globalization;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.Native;

/// <summary>
/// The native API's requests by id: their events from any id, their status, their owner's list, and cancelling —
/// for a request admitted here or, in Redis mode, through another replica.
/// </summary>
internal static partial class NativeEndpoints
{
    private static async Task EventsAsync(
        HttpContext context, string id, IRequestRegistry registry, RemoteRequests remote, IOptions<AnteroomOptions> options, TimeProvider time)
    {
        string lastEventId = context.Request.Headers["Last-Event-ID"].ToString();
        if (lastEventId.Length == 0)
        {
            lastEventId = context.Request.Query["last_event_id"].ToString();
        }

        long afterId = 0;
        if (lastEventId.Length > 0 && (!long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out afterId)))
        {
            await Error(StatusCodes.Status400BadRequest, "invalid_request", "Last-Event-ID must be a whole number of zero or more.", "Last-Event-ID")
                .ExecuteAsync(context);
            return;
        }

        var caller = context.Caller();
        IFollowedRequest? request = await registry.FindAsync(id, caller, context.RequestAborted);
        IDisposable? hold = null;
        if (request is null && await registry.FindElsewhereAsync(id, caller, context.RequestAborted) is { } shared
            && await remote.OpenAsync(shared, caller, context.RequestAborted) is { } opened)
        {
            (request, hold) = opened;
        }

        // A request taken over here is held by this connection from the first moment, as one admitted here.
        using var held = hold;
        if (request is null)
        {
            await NotFound(id).ExecuteAsync(context);
            return;
        }

        var window = await request.Events.GetWindowAsync(context.RequestAborted);
        if (afterId < window.FirstKeptId - 1)
        {
            // The events after it were dropped to keep the buffer bounded: say so rather than skip them silently.
            await Error(StatusCodes.Status410Gone, "replay_window_exceeded",
                $"Events after {afterId} are no longer kept (the replay buffer holds {request.Events.MaxBytes} bytes); the oldest kept is {window.FirstKeptId}.",
                "Last-Event-ID").ExecuteAsync(context);
            return;
        }

        EventStream.PrepareHeaders(context.Response, id);
        await FollowAsync(context, request, afterId, options.Value);
    }

    private static async Task<IResult> StatusAsync(
        HttpContext context, string id, IRequestRegistry registry, IRequestQueue queue, IEventLogFactory logs, RemoteRequests remote, TimeProvider time)
    {
        var caller = context.Caller();
        if (await registry.FindAsync(id, caller, context.RequestAborted) is { } request)
        {
            return Results.Json(await StatusOfAsync(request, queue, time, context.RequestAborted), NativeJson.Default.RequestStatus);
        }

        return await registry.FindElsewhereAsync(id, caller, context.RequestAborted) is { } shared
            ? Results.Json(await StatusOfAsync(shared, queue, logs, remote, time, context.RequestAborted), NativeJson.Default.RequestStatus)
            : NotFound(id);
    }

    private static async Task<IResult> MineAsync(
        HttpContext context, IRequestRegistry registry, IRequestQueue queue, IEventLogFactory logs, RemoteRequests remote, TimeProvider time)
    {
        string owner = context.Caller().Owner;
        var here = await Task.WhenAll((await registry.OwnedByAsync(owner, context.RequestAborted)).Select(r => StatusOfAsync(r, queue, time, context.RequestAborted)));
        var elsewhere = await Task.WhenAll((await registry.OwnedElsewhereAsync(owner, context.RequestAborted)).Select(r => StatusOfAsync(r, queue, logs, remote, time, context.RequestAborted)));
        return Results.Json(new RequestList([.. here.Concat(elsewhere).OrderByDescending(r => r.CreatedAt)]), NativeJson.Default.RequestList);
    }

    private static async Task<IResult> CancelMineAsync(HttpContext context, IRequestRegistry registry, RemoteRequests remote)
    {
        string owner = context.Caller().Owner;
        var live = (await registry.OwnedByAsync(owner, context.RequestAborted)).Where(r => r.EndedAt is null).ToList();
        foreach (var request in live)
        {
            request.Stop("cancelled_by_user");
        }

        var elsewhere = (await registry.OwnedElsewhereAsync(owner, context.RequestAborted)).Where(r => r.Ending is null).ToList();
        foreach (var request in elsewhere)
        {
            await remote.StopAsync(request, "cancelled_by_user");
        }

        return Results.Json(new CancelledRequests([.. live.Select(r => r.Id), .. elsewhere.Select(r => r.Id)]), NativeJson.Default.CancelledRequests);
    }

    private static async Task<RequestStatus> StatusOfAsync(LiveRequest request, IRequestQueue queue, TimeProvider time, CancellationToken cancellationToken)
    {
        var ticket = request.Ticket;
        var place = ticket.State == TicketState.Waiting ? await queue.GetPlaceAsync(ticket.Id, cancellationToken) : null;
        var waitedUntil = ticket.FirstDispatchedAt ?? ticket.EndedAt ?? time.GetUtcNow();
        return new RequestStatus(
            ticket.Id,
            SharedEnding.StateOf(ticket),
            ticket.Model,
            ticket.Backend,
            place?.Position,
            place?.QueueLength,
            place is { } p ? (long)p.EstimatedWait.TotalMilliseconds : null,
            GenerationRunner.Milliseconds(waitedUntil - ticket.ArrivedAt),
            ticket.Attempts,
            ticket.ArrivedAt,
            ticket.EndedAt,
            (await request.Events.GetWindowAsync(cancellationToken)).LastId,
            request.Arrival.Conversation?.Id);
    }

    /// <summary>
    /// The status of a request another replica admitted: its ending as recorded, or where its ticket stands in the
    /// shared queue now.
    /// </summary>
    private static async Task<RequestStatus> StatusOfAsync(
        SharedRequest request, IRequestQueue queue, IEventLogFactory logs, RemoteRequests remote, TimeProvider time, CancellationToken cancellationToken)
    {
        // Lost with its replica: say so (and end its log), rather than "running" until its record expires.
        if (await remote.IsLostAsync(request, cancellationToken))
        {
            request = request with { Ending = new SharedEnding("failed", time.GetUtcNow(), null, 0, 0, 0) };
        }

        var lastEventId = await logs.OpenAsync(request.Id, cancellationToken) is { } log ? (await log.GetWindowAsync(cancellationToken)).LastId : 0;
        if (request.Ending is { } ending)
        {
            return new RequestStatus(
                request.Id, ending.State, request.Model, ending.Backend, null, null, null, ending.WaitedMs, ending.Attempts,
                request.CreatedAt, ending.EndedAt, Math.Max(lastEventId, ending.LastEventId), request.ConversationId);
        }

        var place = await queue.GetPlaceAsync(request.Id, cancellationToken);
        var running = place is null
            ? (await queue.GetRunningAsync(cancellationToken)).FirstOrDefault(r => string.Equals(r.Id, request.Id, StringComparison.Ordinal))
            : null;
        var waitedUntil = running?.StartedAt ?? time.GetUtcNow();
        return new RequestStatus(
            request.Id,
            place is not null ? "waiting" : "running",
            request.Model,
            running?.Backend,
            place?.Position,
            place?.QueueLength,
            place is { } p ? (long)p.EstimatedWait.TotalMilliseconds : null,
            GenerationRunner.Milliseconds(waitedUntil - request.CreatedAt),
            running?.Attempts ?? 0,
            request.CreatedAt,
            null,
            lastEventId,
            request.ConversationId);
    }

    private static async Task<IResult> CancelAsync(HttpContext context, string id, IRequestRegistry registry, RemoteRequests remote)
    {
        var caller = context.Caller();
        var request = await registry.FindAsync(id, caller, context.RequestAborted);
        if (request is null)
        {
            if (await registry.FindElsewhereAsync(id, caller, context.RequestAborted) is not { } shared)
            {
                return NotFound(id);
            }

            if (await remote.IsLostAsync(shared, context.RequestAborted))
            {
                return Error(StatusCodes.Status409Conflict, "already_ended", $"Request '{id}' has already ended (failed: its replica stopped).");
            }

            if (shared.Ending is { } ending)
            {
                return Error(StatusCodes.Status409Conflict, "already_ended", $"Request '{id}' has already ended ({ending.State}).");
            }

            // The replica that runs it stops it, upstream included, and its holders hear why.
            await remote.StopAsync(shared, "cancelled_by_user");
            return Results.Accepted($"/queue/requests/{id}");
        }

        if (request.EndedAt is not null)
        {
            return Error(StatusCodes.Status409Conflict, "already_ended", $"Request '{id}' has already ended ({SharedEnding.StateOf(request.Ticket)}).");
        }

        request.Stop("cancelled_by_user");
        return Results.Accepted($"/queue/requests/{id}");
    }
}
