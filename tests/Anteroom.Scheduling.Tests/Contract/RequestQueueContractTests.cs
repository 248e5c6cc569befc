using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests.Contract;

/// <summary>
/// The contract of <see cref="IRequestQueue"/>, written once against the interface and run by every
/// implementation, as System.Threading.RateLimiting runs its <c>BaseRateLimiterTests</c> for every limiter.
/// </summary>
/// <remarks>
/// <para>
/// To plug in an implementation, derive a public sealed class from this one and implement
/// <see cref="CreateQueue"/>: a fresh, empty queue over exactly the given backends and options, on the given clock.
/// If the queue is <see cref="IDisposable"/> or <see cref="IAsyncDisposable"/> each test disposes it at its end.
/// The tests use nothing but the interface, the <see cref="Ticket"/> and <see cref="SlotLease"/> handles and the
/// value records; only the in-process queue's internals are tested elsewhere.
/// </para>
/// <para>
/// Time: the implementation must take every instant (arrival, deadline, estimate, snapshot) from the
/// <see cref="FakeTimeProvider"/> it is given and start no timer of its own; the tests move that clock with
/// <c>Advance</c> and never sleep. What the tests read — listings, places, counts, snapshots — they read after
/// <see cref="SettleAsync"/>, so an implementation that settles lease ends or due deadlines in the background
/// (a queue in a shared store does) overrides it to wait until everything done so far is visible, and every change
/// announcement the clock says is due has reached <see cref="IRequestQueue.WaitForChangeAsync"/>; the in-process
/// queue applies everything before the call returns and needs nothing. A holder's wait, or a wait for a change that
/// is due, must end without anyone advancing the clock; the tests give it some real seconds before they call it
/// hung.
/// </para>
/// </remarks>
public abstract partial class RequestQueueContractTests
{
    /// <summary>A new, empty queue over <paramref name="backends"/> that reads time only from <paramref name="time"/>.</summary>
    protected abstract IRequestQueue CreateQueue(SchedulerOptions options, IReadOnlyList<BackendDefinition> backends, FakeTimeProvider time);

    /// <summary>
    /// Completes when everything done to <paramref name="queue"/> so far is visible to its queries, and every change
    /// announcement due by now has reached its waits.
    /// </summary>
    protected virtual Task SettleAsync(IRequestQueue queue) => Task.CompletedTask;

    /// <summary>
    /// The share of the property tests' random runs this implementation gets (1 = all). Every run of a queue over the
    /// network is a few hundred round trips; such a queue may take a share, so that the suite stays within minutes
    /// while still running hundreds of random sequences.
    /// </summary>
    protected virtual double PropertyRunShare => 1;

    private protected int PropertyRuns(int runs) => Math.Max(1, (int)(runs * PropertyRunShare));

    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(1);

    private protected static TimeSpan PriorServiceTime => QueueHarness.PriorServiceTime;

    private protected static void AssertClose(TimeSpan expected, TimeSpan? actual)
    {
        Assert.NotNull(actual);
        Assert.InRange(actual.Value, expected - Tolerance, expected + Tolerance);
    }

    private protected static BackendDefinition Backend(string name, int slots, params string[] models) => new(name, slots, models);

    private protected QueueHarness Harness(params BackendDefinition[] backends) => Harness(new SchedulerOptions(), backends);

    private protected QueueHarness Harness(SchedulerOptions options, params BackendDefinition[] backends)
    {
        var time = new FakeTimeProvider();
        var queue = CreateQueue(options, backends.Length > 0 ? backends : [Backend("gpu", 1, "m")], time);
        return new QueueHarness(queue, time, SettleAsync);
    }
}
