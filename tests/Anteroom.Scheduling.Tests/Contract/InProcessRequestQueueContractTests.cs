using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Scheduling.Tests.Contract;

/// <summary>The request-queue contract, run against the in-process queue.</summary>
public sealed class InProcessRequestQueueContractTests : RequestQueueContractTests
{
    /// <inheritdoc />
    protected override IRequestQueue CreateQueue(SchedulerOptions options, IReadOnlyList<BackendDefinition> backends, FakeTimeProvider time) =>
        RequestQueue.CreateInProcess(options, backends, time);
}
