using Anteroom.Backends;
using Anteroom.Scheduling;

namespace Anteroom.Requests;

/// <summary>
/// The backends as a request uses them: the client to call and the protocol it speaks, and where an attempt's
/// outcome is reported for the backend's health. Owned here so that the request core does not depend on the
/// gateway's composition; <c>Gateway.BackendPool</c>, which keeps the circuits and the probes, implements it.
/// </summary>
internal interface IBackendPool
{
    /// <summary>The client of the named backend.</summary>
    IModelServerClient Client(string backend);

    /// <summary>The protocol the named backend speaks.</summary>
    BackendProtocol Protocol(string backend);

    /// <summary>How long a request for <paramref name="model"/> turned away for want of a healthy backend should wait.</summary>
    TimeSpan RetryAfterNoHealthyBackend(string model);

    /// <summary>
    /// A request's attempt on the lease's backend succeeded; <paramref name="sampled"/> holds the backends the request
    /// has already been counted on.
    /// </summary>
    void ReportSuccess(SlotLease lease, ISet<string> sampled);

    /// <summary>A request's attempt on the lease's backend failed with <paramref name="error"/>.</summary>
    void ReportFailure(SlotLease lease, BackendError error, ISet<string> sampled);

    /// <summary>An attempt on the lease ended, whatever became of it (after its slot was freed).</summary>
    void EndAttempt(SlotLease lease);
}
