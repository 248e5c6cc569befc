using Anteroom.Scheduling;
using Anteroom.Shared;

namespace Anteroom.Admin;

/// <summary>
/// Feeds the queue length to <see cref="GatewayMetrics"/> on every (coalesced) scheduler change. Between changes
/// the length cannot move, so no timer is needed: each new bucket starts from the last sample.
/// </summary>
internal sealed partial class QueueSampler(IRequestQueue queue, GatewayMetrics metrics, ILogger<QueueSampler> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // Read the version before sampling: a change after this read wakes the wait below.
            long version = queue.ChangeVersion;
            try
            {
                metrics.SampleQueue((await queue.GetCountsAsync(stoppingToken)).Waiting);
            }
            catch (Exception exception) when (SharedState.ExplainsFailure(exception))
            {
                // Redis mode, with Redis out of reach or too slow to answer: the chart misses a point. Letting it
                // escape would stop the host, taking the whole replica down with every stream it serves.
                LogSampleSkipped(exception.Message);
            }

            await queue.WaitForChangeAsync(version, stoppingToken);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Queue length not sampled: {Reason}")]
    private partial void LogSampleSkipped(string reason);
}
