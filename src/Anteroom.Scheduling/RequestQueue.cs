namespace Anteroom.Scheduling;

/// <summary>Makes <see cref="IRequestQueue"/> implementations.</summary>
public static class RequestQueue
{
    /// <summary>
    /// A queue held in this process's memory over the given backends: the right one for a single gateway. Dispose
    /// it (it is <see cref="IDisposable"/>) to stop its timers.
    /// </summary>
    public static IRequestQueue CreateInProcess(SchedulerOptions options, IEnumerable<BackendDefinition> backends, TimeProvider? timeProvider = null) =>
        new InProcessRequestQueue(new Scheduler(options, backends, timeProvider));
}
