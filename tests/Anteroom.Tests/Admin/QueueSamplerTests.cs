using Anteroom.Admin;
using Anteroom.Scheduling;
using Anteroom.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Admin;

/// <summary>
/// The queue sampler is a background service: an exception escaping it stops the whole host. A sample that finds
/// Redis out of reach must cost a chart point, not the replica.
/// </summary>
public sealed class QueueSamplerTests
{
    [Fact]
    public async Task ASampleThatFindsRedisOutOfReach_IsSkipped_AndTheNextChangeIsSampled()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ct = timeout.Token;
        var time = new FakeTimeProvider();
        var queue = new CountsFailingOnce(
            RequestQueue.CreateInProcess(new SchedulerOptions { ChangeCoalescing = TimeSpan.Zero }, [new BackendDefinition("gpu", 1, ["m"])], time));
        var metrics = new GatewayMetrics(time);
        using var sampler = new QueueSampler(queue, metrics, NullLogger<QueueSampler>.Instance);

        await sampler.StartAsync(ct);
        await queue.Failed.WaitAsync(ct);
        await queue.AdmitAsync(new TicketRequest { Id = "a", Owner = "ada", Model = "m" }, ct);
        await queue.AdmitAsync(new TicketRequest { Id = "b", Owner = "bob", Model = "m" }, ct);
        // Either the next change is sampled, or the sampler has died of the failed one.
        var running = sampler.ExecuteTask!;
        await Task.WhenAny(queue.Sampled, running).WaitAsync(ct);

        Assert.False(running.IsCompleted, running.Exception?.ToString());
        Assert.Equal(1, await queue.Sampled);
        await sampler.StopAsync(ct);
    }

    /// <summary>The in-process queue, except that its first count fails as Redis mode's does with Redis away.</summary>
    private sealed class CountsFailingOnce(IRequestQueue inner) : IRequestQueue
    {
        private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<int> _sampled = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when the first count has failed.</summary>
        public Task Failed => _failed.Task;

        /// <summary>The first waiting count read while a request waits.</summary>
        public Task<int> Sampled => _sampled.Task;

        public SchedulingPolicy Policy => inner.Policy;

        public IReadOnlyCollection<string> Models => inner.Models;

        public long ChangeVersion => inner.ChangeVersion;

        public async ValueTask<QueueCounts> GetCountsAsync(CancellationToken cancellationToken = default)
        {
            if (_failed.TrySetResult())
            {
                throw SharedState.Unavailable(null);
            }

            var counts = await inner.GetCountsAsync(cancellationToken);
            if (counts.Waiting > 0)
            {
                _sampled.TrySetResult(counts.Waiting);
            }

            return counts;
        }

        public ValueTask<Admission> AdmitAsync(TicketRequest request, CancellationToken cancellationToken = default) => inner.AdmitAsync(request, cancellationToken);

        public ValueTask<Dispatch> WaitForSlotAsync(Ticket ticket, CancellationToken cancellationToken = default) => inner.WaitForSlotAsync(ticket, cancellationToken);

        public ValueTask<Ticket?> AdoptAsync(string id, CancellationToken cancellationToken = default) => inner.AdoptAsync(id, cancellationToken);

        public ValueTask<bool> CancelAsync(string id, CancellationToken cancellationToken = default) => inner.CancelAsync(id, cancellationToken);

        public ValueTask<WaitingPlace?> GetPlaceAsync(string id, CancellationToken cancellationToken = default) => inner.GetPlaceAsync(id, cancellationToken);

        public ValueTask WaitForChangeAsync(long seenVersion, CancellationToken cancellationToken = default) => inner.WaitForChangeAsync(seenVersion, cancellationToken);

        public ValueTask<SchedulerSnapshot> GetSnapshotAsync(CancellationToken cancellationToken = default) => inner.GetSnapshotAsync(cancellationToken);

        public ValueTask<IReadOnlyList<WaitingTicket>> GetWaitingAsync(int limitPerModel = int.MaxValue, CancellationToken cancellationToken = default) =>
            inner.GetWaitingAsync(limitPerModel, cancellationToken);

        public ValueTask<IReadOnlyList<RunningTicket>> GetRunningAsync(CancellationToken cancellationToken = default) => inner.GetRunningAsync(cancellationToken);

        public ValueTask<TimeSpan?> EstimateWaitAsync(string model, CancellationToken cancellationToken = default) => inner.EstimateWaitAsync(model, cancellationToken);

        public ValueTask SetBackendHealthAsync(string backend, bool healthy, CancellationToken cancellationToken = default) =>
            inner.SetBackendHealthAsync(backend, healthy, cancellationToken);

        public ValueTask AllowBackendTrialAsync(string backend, CancellationToken cancellationToken = default) => inner.AllowBackendTrialAsync(backend, cancellationToken);

        public ValueTask<int> ForgetIdleUsersAsync(CancellationToken cancellationToken = default) => inner.ForgetIdleUsersAsync(cancellationToken);
    }
}
