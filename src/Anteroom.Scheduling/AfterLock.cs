namespace Anteroom.Scheduling;

/// <summary>
/// Work the <see cref="Scheduler"/> must do after it releases its lock: completing waiters, aborting runs
/// (cancellation callbacks are the holders' code and may call back into the scheduler) and announcing changes.
/// </summary>
/// <remarks>Nearly every operation completes one waiter at most, so the first is held inline and lists are only made for more.</remarks>
internal struct AfterLock
{
    private TaskCompletionSource<Dispatch>? _source;
    private Dispatch _result;
    private List<(TaskCompletionSource<Dispatch> Source, Dispatch Result)>? _moreResults;
    private CancellationTokenSource? _abort;
    private List<CancellationTokenSource>? _moreAborts;
    private bool _changed;

    public void Complete(TaskCompletionSource<Dispatch> source, Dispatch result)
    {
        if (_source is null)
        {
            _source = source;
            _result = result;
        }
        else
        {
            (_moreResults ??= []).Add((source, result));
        }
    }

    public void Abort(CancellationTokenSource source)
    {
        if (_abort is null)
        {
            _abort = source;
        }
        else
        {
            (_moreAborts ??= []).Add(source);
        }
    }

    public void Changed() => _changed = true;

    public readonly void Run(ChangeFeed changes)
    {
        _source?.TrySetResult(_result);
        if (_moreResults is not null)
        {
            foreach (var (source, result) in _moreResults)
            {
                source.TrySetResult(result);
            }
        }

        _abort?.Cancel();
        if (_moreAborts is not null)
        {
            foreach (var source in _moreAborts)
            {
                source.Cancel();
            }
        }

        if (_changed)
        {
            changes.Changed();
        }
    }
}
