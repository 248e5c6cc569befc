using Anteroom.Configuration;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.Extensions.Options;

namespace Anteroom.DropIn;

/// <summary>What the drop-in APIs share: the reception, the queue's view of models, the clock and stream settings.</summary>
internal sealed class DropInDesk(Reception reception, IRequestQueue queue, Gateway.BackendPool pool, IOptions<AnteroomOptions> options, TimeProvider time)
{
    private readonly DateTimeOffset _startedAt = time.GetUtcNow();

    public Reception Reception => reception;

    public IRequestQueue Queue => queue;

    public TimeProvider Time => time;

    public TimeSpan KeepAlive { get; } = TimeSpan.FromSeconds(options.Value.Stream.KeepAliveSeconds);

    public DateTimeOffset StartedAt => _startedAt;

    /// <summary>The union of the models of every healthy backend that the caller's tier may use.</summary>
    public async Task<IReadOnlyList<string>> HealthyModelsAsync(Identity.Caller caller, CancellationToken cancellationToken) =>
        [.. (await queue.GetSnapshotAsync(cancellationToken)).Backends.Where(b => b.Healthy).SelectMany(b => b.Models)
            .Distinct(StringComparer.Ordinal).Where(caller.MayUse).Order(StringComparer.Ordinal)];

    /// <summary>
    /// Why a request for <paramref name="model"/> could not run now, judged as admission would judge it (the
    /// caller's tier, a backend that serves it, a healthy one), for answers that need no queue; null when it could.
    /// </summary>
    public async Task<Denial?> CheckModelAsync(Identity.Caller caller, string model, CancellationToken cancellationToken)
    {
        if (AdmissionPolicy.ModelDenial(caller, model) is { } denial)
        {
            return denial;
        }

        if (!queue.Models.Contains(model))
        {
            return new Denial(StatusCodes.Status404NotFound, "model_not_found", $"No backend serves model '{model}'.", Field: "model");
        }

        return await queue.EstimateWaitAsync(model, cancellationToken) is null
            ? new Denial(StatusCodes.Status503ServiceUnavailable, "no_healthy_backend",
                $"No healthy backend serves model '{model}' right now.", pool.RetryAfterNoHealthyBackend(model))
            : null;
    }

    public OpenAIModel OpenAIModel(string id) => new(id, _startedAt.ToUnixTimeSeconds(), "anteroom");
}
