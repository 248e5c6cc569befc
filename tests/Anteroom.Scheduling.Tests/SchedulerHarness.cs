using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests;

/// <summary>A scheduler on fake time, with short ways to admit tickets and reach their leases.</summary>
internal sealed class SchedulerHarness : IDisposable
{
    /// <summary>What the default prior predicts for one request: 500 ms to the first token, 256 tokens at 30/s.</summary>
    public static readonly TimeSpan PriorServiceTime = TimeSpan.FromMilliseconds(500 + (1000.0 * 256 / 30));

    private int _nextId;

    public SchedulerHarness(params BackendDefinition[] backends)
        : this(new SchedulerOptions(), backends)
    {
    }

    public SchedulerHarness(SchedulerOptions options, params BackendDefinition[] backends)
    {
        Scheduler = new Scheduler(options, backends.Length > 0 ? backends : [Backend("gpu", 1, "m")], Time);
    }

    public FakeTimeProvider Time { get; } = new();

    public Scheduler Scheduler { get; }

    public static BackendDefinition Backend(string name, int slots, params string[] models) => new(name, slots, models);

    public Admission TryAdmit(
        string owner,
        string model = "m",
        double weight = 1,
        int promptTokens = 0,
        int? maxOutputTokens = null,
        TimeSpan? maxWait = null,
        string? id = null) =>
        Scheduler.Admit(new TicketRequest
        {
            Id = id ?? $"{owner}-{++_nextId}",
            Owner = owner,
            Model = model,
            Weight = weight,
            PromptTokens = promptTokens,
            MaxOutputTokens = maxOutputTokens,
            MaxWait = maxWait,
        });

    public SchedulerTicket Admit(
        string owner,
        string model = "m",
        double weight = 1,
        int promptTokens = 0,
        int? maxOutputTokens = null,
        TimeSpan? maxWait = null,
        string? id = null)
    {
        var admission = TryAdmit(owner, model, weight, promptTokens, maxOutputTokens, maxWait, id);
        Assert.True(admission.IsAdmitted, admission.Refusal?.Message);
        return (SchedulerTicket)admission.Ticket;
    }

    public List<SchedulerTicket> AdmitMany(int count, string owner, string model = "m", double weight = 1) =>
        [.. Enumerable.Range(0, count).Select(_ => Admit(owner, model, weight))];

    /// <summary>The lease the ticket's wait ended with; fails unless the ticket got a slot.</summary>
    public static SlotLease LeaseOf(Ticket ticket)
    {
        var dispatch = Ended(((SchedulerTicket)ticket).Dispatched);
        Assert.NotNull(dispatch.Lease);
        Assert.Same(ticket, dispatch.Lease.Ticket);
        return dispatch.Lease;
    }

    /// <summary>The result of a wait that has already ended; fails if it has not.</summary>
    public static Dispatch Ended(Task<Dispatch> wait)
    {
        Assert.True(wait.IsCompletedSuccessfully, "The wait has not ended.");
        return wait.GetAwaiter().GetResult();
    }

    public int PositionOf(Ticket ticket)
    {
        var place = Scheduler.GetPlace(ticket);
        Assert.NotNull(place);
        return place.Value.Position;
    }

    /// <summary>
    /// Completes running tickets one at a time (as estimated: no prompt, the prior's 256 output tokens) until
    /// <paramref name="count"/> dispatches have been seen or nothing runs; returns the tickets in the order they ran.
    /// </summary>
    public List<SchedulerTicket> RunInOrder(int count = int.MaxValue)
    {
        var order = new List<SchedulerTicket>();
        var seen = new HashSet<SchedulerTicket>();
        while (order.Count < count)
        {
            var running = Scheduler.GetRunning();
            var fresh = running.Select(l => (SchedulerTicket)l.Ticket).Where(seen.Add).ToList();
            order.AddRange(fresh);
            if (running.Count == 0 || order.Count >= count)
            {
                break;
            }

            running[0].Complete(0, 256);
        }

        return order.Take(count).ToList();
    }

    public void Dispose() => Scheduler.Dispose();
}
