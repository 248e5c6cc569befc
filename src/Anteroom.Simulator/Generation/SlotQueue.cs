namespace Anteroom.Simulator.Generation;

/// <summary>
/// Generation slots shared by every model, with a bounded first-in-first-out waiting line in front of them, as
/// Ollama's scheduler has. A freed slot passes straight to the oldest waiter, so nobody can overtake the line.
/// </summary>
internal sealed class SlotQueue(int capacity, int maxWaiting, StatsBoard stats)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiting = new();
    private int _active;

    public int Active => Volatile.Read(ref _active);

    /// <summary>
    /// A slot, or null when the waiting line is full (counted as rejected). Throws
    /// <see cref="OperationCanceledException"/> when the token fires first; that generation counts as cancelled.
    /// </summary>
    public Task<SlotLease?> AcquireAsync(CancellationToken cancellationToken)
    {
        Task<SlotLease?>? immediate = null;
        Waiter? waiter = null;
        StatsBoard.Changed changed;
        lock (_lock)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                changed = stats.Publish(_active, _waiting.Count, GenerationOutcome.Cancelled);
                immediate = Task.FromCanceled<SlotLease?>(cancellationToken);
            }
            else if (_active < capacity && _waiting.Count == 0)
            {
                _active++;
                changed = stats.Publish(_active, _waiting.Count);
                immediate = Task.FromResult<SlotLease?>(new SlotLease(this));
            }
            else if (_waiting.Count >= maxWaiting)
            {
                changed = stats.Publish(_active, _waiting.Count, rejected: true);
                immediate = Task.FromResult<SlotLease?>(null);
            }
            else
            {
                waiter = new Waiter();
                waiter.Node = _waiting.AddLast(waiter);
                changed = stats.Publish(_active, _waiting.Count);
            }
        }

        changed.Notify();
        return immediate ?? WaitAsync(waiter!, cancellationToken);
    }

    private async Task<SlotLease?> WaitAsync(Waiter waiter, CancellationToken cancellationToken)
    {
        // Registered outside the lock: the callback takes the lock, and runs at once if the token already fired.
        await using var registration = cancellationToken.Register(
            static state =>
            {
                var (queue, waiter) = ((SlotQueue, Waiter))state!;
                queue.Abandon(waiter);
            },
            (this, waiter));
        return await waiter.Granted.Task;
    }

    private void Abandon(Waiter waiter)
    {
        StatsBoard.Changed changed;
        lock (_lock)
        {
            // A waiter already handed a slot keeps it; the generation sees the cancellation and frees it itself.
            if (waiter.Node?.List is null)
                return;
            _waiting.Remove(waiter.Node);
            changed = stats.Publish(_active, _waiting.Count, GenerationOutcome.Cancelled);
        }

        changed.Notify();
        waiter.Granted.TrySetCanceled();
    }

    internal void Return(GenerationOutcome outcome)
    {
        Waiter? next = null;
        StatsBoard.Changed changed;
        lock (_lock)
        {
            if (_waiting.First is { } first)
            {
                next = first.Value;
                _waiting.RemoveFirst();
            }
            else
            {
                _active--;
            }

            changed = stats.Publish(_active, _waiting.Count, outcome);
        }

        changed.Notify();
        next?.Granted.TrySetResult(new SlotLease(this));
    }

    private sealed class Waiter
    {
        public TaskCompletionSource<SlotLease?> Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }
    }
}

/// <summary>One held slot; <see cref="Finish"/> records the generation's outcome and frees the slot, once.</summary>
internal sealed class SlotLease(SlotQueue queue)
{
    private int _finished;

    public void Finish(GenerationOutcome outcome)
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0)
            queue.Return(outcome);
    }
}
