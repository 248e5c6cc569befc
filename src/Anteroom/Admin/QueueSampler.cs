using Anteroom.Scheduling;

namespace Anteroom.Admin;

/// <summary>
/// Feeds the queue length to <see cref="GatewayMetrics"/> on every (coalesced) scheduler change. Between changes
/// the length cannot move, so no timer is needed: each new bucket starts from the last sample.
/// </summary>
internal sealed class QueueSampler(IRequestQueue queue, GatewayMetrics metrics) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // Read the version before sampling: a change after this read wakes the wait below.
            long version = queue.ChangeVersion;
            metrics.SampleQueue((await queue.GetCountsAsync(stoppingToken)).Waiting);
            await queue.WaitForChangeAsync(version, stoppingToken);
        }
    }
}
