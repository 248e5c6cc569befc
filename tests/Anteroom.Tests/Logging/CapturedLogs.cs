using Microsoft.Extensions.Logging;

namespace Anteroom.Tests.Logging;

/// <summary>One line as a logger provider received it: its category, level, text and structured fields.</summary>
internal sealed record CapturedLine(string Category, LogLevel Level, string Message, IReadOnlyDictionary<string, object?> Fields);

/// <summary>
/// A logger provider that keeps what reaches it. The host's filter rules apply to it as to the console, so it sees
/// exactly what a configuration lets through.
/// </summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly Lock _gate = new();
    private readonly List<CapturedLine> _lines = [];
    private TaskCompletionSource _added = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<CapturedLine> Lines
    {
        get
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Clear()
    {
        lock (_gate)
        {
            _lines.Clear();
        }
    }

    /// <summary>Completes once the lines kept so far satisfy <paramref name="condition"/>, checked on every new line.</summary>
    public async Task WaitUntilAsync(Func<IReadOnlyList<CapturedLine>, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task added;
            lock (_gate)
            {
                if (condition(_lines))
                {
                    return;
                }

                added = _added.Task;
            }

            await added.WaitAsync(cancellationToken);
        }
    }

    public void Dispose()
    {
    }

    private void Add(CapturedLine line)
    {
        TaskCompletionSource added;
        lock (_gate)
        {
            _lines.Add(line);
            added = _added;
            _added = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        added.SetResult();
    }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var fields = new Dictionary<string, object?>();
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    fields[key] = value;
                }
            }

            owner.Add(new CapturedLine(category, logLevel, formatter(state, exception), fields));
        }
    }
}
