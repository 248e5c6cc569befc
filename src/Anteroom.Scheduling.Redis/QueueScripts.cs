using System.Reflection;

namespace Anteroom.Scheduling.Redis;

/// <summary>
/// The Lua scripts of the queue, each the shared library (<c>queue.lua</c> and <c>estimates.lua</c>) followed by
/// one operation, and every operation but init by the check that the store still holds the caller's tickets
/// (<c>store.lua</c>). They are evaluated by their text: StackExchange.Redis sends a script's body once and its
/// SHA-1 after that, and sends the body again if Redis lost its script cache (a restart), so nothing here has to
/// load or track them.
/// </summary>
internal static class QueueScripts
{
    // The library in two files by concern: the queue, then the estimates, which use the queue's locals.
    private static readonly string Library = Read("queue.lua") + "\n" + Read("estimates.lua");
    private static readonly string Store = Read("store.lua");

    /// <summary>The error an operation answers when the store was lost or made again (<c>store.lua</c>).</summary>
    public const string StoreLost = "STORELOST";

    public static readonly string Init = Library + "\n" + Read("init.lua");
    public static readonly string Admit = Operation("admit.lua");
    public static readonly string End = Operation("end.lua");
    public static readonly string Requeue = Operation("requeue.lua");
    public static readonly string Cancel = Operation("cancel.lua");
    public static readonly string Health = Operation("health.lua");
    public static readonly string Trial = Operation("trial.lua");
    public static readonly string Sweep = Operation("sweep.lua");
    public static readonly string Forget = Operation("forget.lua");
    public static readonly string Place = Operation("place.lua");
    public static readonly string Estimate = Operation("estimate.lua");
    public static readonly string Waiting = Operation("waiting.lua");
    public static readonly string Running = Operation("running.lua");
    public static readonly string Counts = Operation("counts.lua");
    public static readonly string Snapshot = Operation("snapshot.lua");
    public static readonly string Adopt = Operation("adopt.lua");

    private static string Operation(string name) => Library + "\n" + Store + "\n" + Read(name);

    private static string Read(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"The script {name} is not embedded in {typeof(QueueScripts).Assembly.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
