using System.Collections.Concurrent;

namespace Anteroom.Requests;

/// <summary>
/// How many refused requests of one caller are written to the request log per minute. A client that hammers a limit
/// is refused in microseconds; without this each refusal would still be a row on disk. Past the budget refusals are
/// only counted in the metrics. The table is emptied each minute, so it holds only callers refused in the current one.
/// </summary>
internal sealed class RefusalLogBudget(int perMinute, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, int> _logged = new(StringComparer.Ordinal);
    private long _minute = long.MinValue;

    /// <summary>Whether this refusal of <paramref name="owner"/> is written; counts it either way.</summary>
    public bool TryTake(string owner)
    {
        long minute = time.GetUtcNow().ToUnixTimeSeconds() / 60;
        long seen = Interlocked.Read(ref _minute);
        if (minute != seen && Interlocked.CompareExchange(ref _minute, minute, seen) == seen)
        {
            _logged.Clear();
        }

        return _logged.AddOrUpdate(owner, 1, static (_, count) => count == int.MaxValue ? count : count + 1) <= perMinute;
    }
}
