using Anteroom.Configuration;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.DropIn;

/// <summary>What the drop-in APIs share: the reception, the scheduler's view of models, the clock and stream settings.</summary>
internal sealed class DropInDesk(Reception reception, Scheduler scheduler, IOptions<AnteroomOptions> options, TimeProvider time)
{
    private readonly DateTimeOffset _startedAt = time.GetUtcNow();

    public Reception Reception => reception;

    public Scheduler Scheduler => scheduler;

    public TimeProvider Time => time;

    public TimeSpan KeepAlive { get; } = TimeSpan.FromSeconds(options.Value.Stream.KeepAliveSeconds);

    public DateTimeOffset StartedAt => _startedAt;

    /// <summary>The union of the models of every healthy backend that the caller's tier may use.</summary>
    public IReadOnlyList<string> HealthyModels(Identity.Caller caller) =>
        [.. scheduler.Snapshot().Backends.Where(b => b.Healthy).SelectMany(b => b.Models)
            .Distinct(StringComparer.Ordinal).Where(caller.MayUse).Order(StringComparer.Ordinal)];

    public OpenAIModel OpenAIModel(string id) => new(id, _startedAt.ToUnixTimeSeconds(), "anteroom");
}
