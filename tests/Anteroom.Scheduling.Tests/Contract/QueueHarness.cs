using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests.Contract;

/// <summary>
/// A queue on fake time driven only through <see cref="IRequestQueue"/>, playing the holders: every admitted
/// ticket's holder waits for its slot at once, as the gateway's request path does, and the harness keeps that wait.
/// Reads go through <see cref="SettleAsync"/> first.
/// </summary>
internal sealed class QueueHarness(IRequestQueue queue, FakeTimeProvider time, Func<IRequestQueue, Task> settle) : IAsyncDisposable
{
    /// <summary>What the default prior predicts for one request: 500 ms to the first token, 256 tokens at 30/s.</summary>
    public static readonly TimeSpan PriorServiceTime = TimeSpan.FromMilliseconds(500 + (1000.0 * 256 / 30));

    // Real time, not the fake clock: only reached when an implementation never ends a wait it should have ended.
    private static readonly TimeSpan Hung = TimeSpan.FromSeconds(30);

    private readonly Dictionary<Ticket, (Task<Dispatch> Wait, CancellationToken HolderLeaves)> _holders = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, Ticket> _byId = new(StringComparer.Ordinal);
    private int _nextId;

    public IRequestQueue Queue => queue;

    public FakeTimeProvider Time => time;

    public Task SettleAsync() => settle(queue);

    public async Task<Admission> TryAdmitAsync(
        string owner,
        string model = "m",
        double weight = 1,
        int promptTokens = 0,
        int? maxOutputTokens = null,
        TimeSpan? maxWait = null,
        string? id = null,
        CancellationToken holderLeaves = default) =>
        await TryAdmitAsync(
            new TicketRequest
            {
                Id = id ?? $"{owner}-{++_nextId}",
                Owner = owner,
                Model = model,
                Weight = weight,
                PromptTokens = promptTokens,
                MaxOutputTokens = maxOutputTokens,
                MaxWait = maxWait,
            },
            holderLeaves);

    /// <summary>Admits the request; an admitted ticket's holder starts waiting for its slot with <paramref name="holderLeaves"/>.</summary>
    public async Task<Admission> TryAdmitAsync(TicketRequest request, CancellationToken holderLeaves = default)
    {
        var admission = await queue.AdmitAsync(request);
        if (admission.IsAdmitted)
        {
            _byId[admission.Ticket.Id] = admission.Ticket;
            Hold(admission.Ticket, holderLeaves);
        }

        return admission;
    }

    public async Task<Ticket> AdmitAsync(
        string owner,
        string model = "m",
        double weight = 1,
        int promptTokens = 0,
        int? maxOutputTokens = null,
        TimeSpan? maxWait = null,
        string? id = null,
        CancellationToken holderLeaves = default)
    {
        var admission = await TryAdmitAsync(owner, model, weight, promptTokens, maxOutputTokens, maxWait, id, holderLeaves);
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        return admission.Ticket;
    }

    public async Task<List<Ticket>> AdmitManyAsync(int count, string owner, string model = "m", double weight = 1)
    {
        var tickets = new List<Ticket>(count);
        for (int i = 0; i < count; i++)
        {
            tickets.Add(await AdmitAsync(owner, model, weight));
        }

        return tickets;
    }

    /// <summary>The holder's current wait for <paramref name="ticket"/>'s slot.</summary>
    public Task<Dispatch> WaitOf(Ticket ticket) => _holders[ticket].Wait;

    /// <summary>The end of the holder's wait; fails if the queue never ends it.</summary>
    public async Task<Dispatch> EndOfWaitAsync(Ticket ticket) => await WaitOf(ticket).WaitAsync(Hung);

    /// <summary>The end of a wait the queue must end by itself, with no one moving the clock; fails if it never does.</summary>
    public static async Task EndOfAsync(Task wait) => await wait.WaitAsync(Hung);

    /// <summary>The lease the holder's wait ended with; fails unless the ticket got a slot.</summary>
    public async Task<SlotLease> LeaseOfAsync(Ticket ticket)
    {
        var dispatch = await EndOfWaitAsync(ticket);
        Assert.NotNull(dispatch.Lease);
        Assert.Same(ticket, dispatch.Lease.Ticket);
        return dispatch.Lease;
    }

    /// <summary>Requeues as the holder does: on true it waits for a slot again.</summary>
    public bool TryRequeue(SlotLease lease)
    {
        bool requeued = lease.TryRequeue();
        if (requeued)
        {
            Hold(lease.Ticket, _holders[lease.Ticket].HolderLeaves);
        }

        return requeued;
    }

    /// <summary>Where the ticket is, as the queue's listings tell it.</summary>
    public async Task<TicketState> StateOfAsync(Ticket ticket)
    {
        if ((await RunningAsync()).Any(r => r.Id == ticket.Id))
        {
            return TicketState.Running;
        }

        return await PlaceOfAsync(ticket) is null ? TicketState.Ended : TicketState.Waiting;
    }

    /// <summary>How the ticket ended: told by the holder's wait, or by the lease the holder ended; null while it is live.</summary>
    public async Task<TicketOutcome?> OutcomeOfAsync(Ticket ticket)
    {
        if (await StateOfAsync(ticket) != TicketState.Ended)
        {
            return null;
        }

        var dispatch = await EndOfWaitAsync(ticket);
        if (dispatch.Lease is null)
        {
            Assert.Equal(dispatch.Outcome, ticket.Outcome);
            return dispatch.Outcome;
        }

        Assert.True(dispatch.Lease.IsEnded, $"{ticket} is listed nowhere but its lease has not ended.");
        return ticket.Outcome;
    }

    public Task<List<TicketState>> StatesOfAsync(IEnumerable<Ticket> tickets) => EachAsync(tickets, StateOfAsync);

    public Task<List<TicketOutcome?>> OutcomesOfAsync(IEnumerable<Ticket> tickets) => EachAsync(tickets, OutcomeOfAsync);

    public Task<List<SlotLease>> LeasesOfAsync(IEnumerable<Ticket> tickets) => EachAsync(tickets, LeaseOfAsync);

    public Task<List<WaitingPlace?>> PlacesOfAsync(IEnumerable<Ticket> tickets) => EachAsync(tickets, PlaceOfAsync);

    /// <summary>Asks about each ticket in turn, in order: reads go one at a time, as a holder's would.</summary>
    private static async Task<List<T>> EachAsync<T>(IEnumerable<Ticket> tickets, Func<Ticket, Task<T>> ask)
    {
        var answers = new List<T>();
        foreach (var ticket in tickets)
        {
            answers.Add(await ask(ticket));
        }

        return answers;
    }

    public async Task<WaitingPlace?> PlaceOfAsync(Ticket ticket)
    {
        await SettleAsync();
        return await queue.GetPlaceAsync(ticket.Id);
    }

    public async Task<int> PositionOfAsync(Ticket ticket)
    {
        var place = await PlaceOfAsync(ticket);
        Assert.NotNull(place);
        return place.Value.Position;
    }

    public async Task<SchedulerSnapshot> SnapshotAsync()
    {
        await SettleAsync();
        return await queue.GetSnapshotAsync();
    }

    public async Task<QueueCounts> CountsAsync()
    {
        await SettleAsync();
        return await queue.GetCountsAsync();
    }

    public async Task<IReadOnlyList<WaitingTicket>> WaitingAsync(int limitPerModel = int.MaxValue)
    {
        await SettleAsync();
        return await queue.GetWaitingAsync(limitPerModel);
    }

    public async Task<IReadOnlyList<RunningTicket>> RunningAsync()
    {
        await SettleAsync();
        return await queue.GetRunningAsync();
    }

    public async Task<TimeSpan?> EstimateWaitAsync(string model)
    {
        await SettleAsync();
        return await queue.EstimateWaitAsync(model);
    }

    /// <summary>The handle this harness admitted with the id, for listings that name tickets by id.</summary>
    public Ticket TicketWithId(string id) => _byId[id];

    /// <summary>
    /// Completes running tickets one at a time (as estimated: no prompt, the prior's 256 output tokens) until
    /// <paramref name="count"/> dispatches have been seen or nothing runs; returns the tickets in the order they ran.
    /// </summary>
    public async Task<List<Ticket>> RunInOrderAsync(int count = int.MaxValue)
    {
        var order = new List<Ticket>();
        var seen = new HashSet<Ticket>(ReferenceEqualityComparer.Instance);
        while (order.Count < count)
        {
            var running = (await RunningAsync()).Select(r => TicketWithId(r.Id)).ToList();
            order.AddRange(running.Where(seen.Add));
            if (running.Count == 0 || order.Count >= count)
            {
                break;
            }

            (await LeaseOfAsync(running[0])).Complete(0, 256);
        }

        return order.Take(count).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        switch (queue)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync();
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }

    private void Hold(Ticket ticket, CancellationToken holderLeaves) =>
        _holders[ticket] = (queue.WaitForSlotAsync(ticket, holderLeaves).AsTask(), holderLeaves);
}
