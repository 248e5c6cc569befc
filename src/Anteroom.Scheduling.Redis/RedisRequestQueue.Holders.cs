using System.Globalization;
using StackExchange.Redis;

namespace Anteroom.Scheduling.Redis;

// The tickets this replica holds: their lease ends and requeues, the events the scripts send about them (in a reply
// or over pub/sub), their deadlines, and the heartbeat that keeps their slots leased.
internal sealed partial class RedisRequestQueue
{
    internal void EndLease(RedisLease lease, TicketOutcome outcome, ServiceSample? sample)
    {
        var now = Now;
        var ticket = lease.Holder;
        lock (_gate)
        {
            if (!ReferenceEquals(ticket.Lease, lease) || ticket.State != TicketState.Running)
            {
                // The store ended it already: this replica's lease ran out.
                return;
            }

            ticket.End(outcome, now);
            Forget(ticket);
            if (ticket.Store != _store)
            {
                // Its store was lost: the store in use never knew it, and its slot there is not taken.
                return;
            }
        }

        EndInStore(lease, outcome, sample, now);
    }

    internal bool Requeue(RedisLease lease)
    {
        var now = Now;
        var ticket = lease.Holder;
        TicketOutcome? ended = null;
        lock (_gate)
        {
            if (!ReferenceEquals(ticket.Lease, lease) || ticket.State != TicketState.Running)
            {
                return false;
            }

            bool lost = ticket.Store != _store;
            if (ticket.AbortRequested)
            {
                ended = TicketOutcome.Cancelled;
            }
            else if (ticket.Attempts >= _options.MaxDispatchAttempts || lost)
            {
                // A ticket of a lost store cannot wait again: the store in use does not know it.
                ended = TicketOutcome.Failed;
            }

            if (ended is { } outcome)
            {
                ticket.End(outcome, now);
                Forget(ticket);
            }

            if (lost)
            {
                return false;
            }
            else
            {
                ticket.WaitAgain(now);
                TrackDeadlineLocked(ticket);
            }
        }

        if (ended is { } end)
        {
            EndInStore(lease, end, null, now);
            return false;
        }

        InBackground(QueueScripts.Requeue, now, ticket.Id, ticket.Sequence, lease.Attempt);
        return true;
    }

    private void EndInStore(RedisLease lease, TicketOutcome outcome, ServiceSample? sample, DateTimeOffset now)
    {
        var ticket = lease.Holder;
        RedisValue firstToken = lease.FirstTokenAt is { } at ? Micros(at) : "";
        InBackground(QueueScripts.End, now,
            ticket.Id, ticket.Sequence, lease.Attempt, (int)outcome,
            sample?.PromptTokens ?? 0, sample is { } measured ? measured.OutputTokens : "", firstToken);
    }

    /// <summary>Applies a changing script's reply: its events for tickets held here, and its change announcement.</summary>
    private void Settle(RedisResult[] results, DateTimeOffset now)
    {
        foreach (var message in (RedisResult[])results[1]!)
        {
            Apply((string)message!, now);
        }

        if ((int)results[0] == 1)
        {
            _changes.Changed(now);
        }
    }

    private void OnEvent(string message)
    {
        if (message.StartsWith("M\n", StringComparison.Ordinal))
        {
            TaskCompletionSource? marker;
            lock (_gate)
            {
                _markers.Remove(message, out marker);
            }

            marker?.TrySetResult();
            return;
        }

        Apply(message, null);
    }

    private void OnChangeMessage(string message)
    {
        var parts = message.Split('\n', 2);
        if (parts.Length == 2 && parts[0] != _replica)
        {
            // Another replica's change, timed by its clock but never later than now.
            var at = Instant(Number(parts[1]));
            var now = Now;
            _changes.Changed(at < now ? at : now);
        }
    }

    /// <summary>
    /// Applies one event of the store to the ticket held here: D (dispatched), E (ended while waiting, or its run
    /// lost with this replica's lease), A (asked to abort). <paramref name="at"/> is the instant of the operation
    /// whose reply carried it, exact to the tick; events from other replicas carry their instant in microseconds.
    /// </summary>
    private void Apply(string message, DateTimeOffset? at)
    {
        char kind = message[0];
        var parts = message.Split('\n', kind switch { 'D' => 8, 'E' => 5, _ => 3 });
        string id = parts[^1];
        long sequence = long.Parse(parts[1], CultureInfo.InvariantCulture);
        TaskCompletionSource<Dispatch>? source = null;
        Dispatch result = default;
        CancellationTokenSource? abort = null;
        lock (_gate)
        {
            if (!_held.TryGetValue(id, out var ticket) || ticket.Sequence != sequence)
            {
                if (at is null && !_disposed)
                {
                    if (!_early.TryGetValue(id, out var early))
                    {
                        _early[id] = early = [];
                    }

                    early.Add((message, Now.UtcTicks));
                }

                return;
            }

            switch (kind)
            {
                case 'D' when ticket.State == TicketState.Waiting && int.Parse(parts[2], CultureInfo.InvariantCulture) == ticket.Attempts + 1:
                    var startedAt = at ?? Instant(Number(parts[4]));
                    var lease = new RedisLease(this, ticket, parts[6], startedAt, parts[3] == "1", ticket.Attempts + 1);
                    ticket.Run(lease, at ?? Instant(Number(parts[5])));
                    source = ticket.DispatchSource;
                    result = Dispatch.Started(lease);
                    break;
                case 'E' when ticket.State == TicketState.Waiting:
                    var outcome = (TicketOutcome)int.Parse(parts[2], CultureInfo.InvariantCulture);
                    ticket.End(outcome, at ?? Instant(Number(parts[3])));
                    Forget(ticket);
                    source = ticket.DispatchSource;
                    result = Dispatch.Ended(outcome);
                    break;
                case 'E' when ticket.State == TicketState.Running:
                    // Its slot was taken back (this replica's lease ran out): stop the run, whose end is now moot.
                    ticket.End(TicketOutcome.Failed, at ?? Instant(Number(parts[3])));
                    Forget(ticket);
                    abort = ticket.AbortSource;
                    break;
                case 'A' when ticket.State == TicketState.Running:
                    abort = ticket.AbortSource;
                    break;
            }
        }

        source?.TrySetResult(result);
        abort?.Cancel();
    }

    /// <summary>The mirror of a ticket adopt.lua handed to this replica, from the stored entry it returned.</summary>
    private RedisTicket Adopted(string id, RedisResult[] results, string store)
    {
        var maxWait = Span(Number(results[11]));
        var request = new TicketRequest
        {
            Id = id,
            Owner = (string)results[3]!,
            Model = (string)results[4]!,
            Weight = Number(results[5]),
            PromptTokens = (int)results[6],
            MaxOutputTokens = (string?)results[7] is { Length: > 0 } maxOutput ? int.Parse(maxOutput, CultureInfo.InvariantCulture) : null,
            MaxWait = maxWait,
            HolderGrace = Span(Number(results[15])),
        };
        var ticket = new RedisTicket(this, request, (long)Number(results[8]), Instant(Number(results[9])), maxWait, store);
        ticket.Resume(
            Instant(Number(results[10])),
            (int)Number(results[12]),
            (string?)results[13] is { Length: > 0 } firstDispatched ? Instant(Number(firstDispatched)) : null,
            (string?)results[14] is { Length: > 0 } backend ? backend : null);
        return ticket;
    }

    private void Register(RedisTicket ticket)
    {
        List<(string Message, long ReceivedAt)>? early;
        lock (_gate)
        {
            if (ticket.Store != _store)
            {
                // Its store was lost between its admission and now, and the recovery did not see it yet.
                ticket.End(TicketOutcome.Failed, Now);
                ticket.DispatchSource.TrySetResult(Dispatch.Ended(TicketOutcome.Failed));
                return;
            }

            _held[ticket.Id] = ticket;
            TrackDeadlineLocked(ticket);
            _early.Remove(ticket.Id, out early);
        }

        if (early is not null)
        {
            foreach (var (message, _) in early)
            {
                Apply(message, null);
            }
        }
    }

    private void Forget(RedisTicket ticket)
    {
        if (_held.TryGetValue(ticket.Id, out var held) && ReferenceEquals(held, ticket))
        {
            _held.Remove(ticket.Id);
        }
    }

    private RedisTicket Own(Ticket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return ticket is RedisTicket own && ReferenceEquals(own.Queue, this)
            ? own
            : throw new ArgumentException($"Ticket '{ticket.Id}' was not admitted by this queue.", nameof(ticket));
    }

    private async Task<Dispatch> WaitCancellablyAsync(RedisTicket ticket, Task<Dispatch> dispatched, CancellationToken cancellationToken)
    {
        using (cancellationToken.UnsafeRegister(static (state, _) =>
        {
            var (queue, t) = ((RedisRequestQueue, RedisTicket))state!;
            queue.InBackground(QueueScripts.Cancel, queue.Now, t.Id, t.Sequence);
        }, (this, ticket)))
        {
            return await dispatched.ConfigureAwait(false);
        }
    }

    // Deadlines of the tickets held here: the timer wakes a sweep, which ends every waiting ticket past its
    // deadline whoever holds it. Entries of tickets that ran or ended are stale and skipped.
    private void TrackDeadlineLocked(RedisTicket ticket)
    {
        long due = ticket.Deadline.UtcTicks;
        _deadlines.Enqueue(ticket, due);
        if (due < _armed)
        {
            ArmLocked(due);
        }
    }

    private void ArmLocked(long due)
    {
        _armed = due;
        // At least one tick ahead: a timer due now could fire on this thread while the lock is held.
        _deadlineTimer.Change(TimeSpan.FromTicks(Math.Max(due - Now.UtcTicks, 1)), Timeout.InfiniteTimeSpan);
    }

    private void OnDeadline()
    {
        var now = Now;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _armed = long.MaxValue;
            while (_deadlines.TryPeek(out var ticket, out long due))
            {
                bool current = ticket.State == TicketState.Waiting && ticket.Deadline.UtcTicks == due;
                if (current && due > now.UtcTicks)
                {
                    ArmLocked(due);
                    break;
                }

                _deadlines.Dequeue();
            }
        }

        InBackground(QueueScripts.Sweep, now);
    }

    private void OnHeartbeat()
    {
        var now = Now;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            // Events for tickets never registered here (their admission failed on the way back) are dropped after
            // a lease duration: by then the store has ended those tickets.
            long stale = (now - _leaseDuration).UtcTicks;
            foreach (var (id, early) in _early.ToList())
            {
                early.RemoveAll(e => e.ReceivedAt < stale);
                if (early.Count == 0)
                {
                    _early.Remove(id);
                }
            }
        }

        InBackground(QueueScripts.Sweep, now);
    }
}
