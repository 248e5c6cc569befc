namespace Anteroom.Requests;

/// <summary>What a connection does with a request's events: write them in its API's format.</summary>
internal interface IEventSink
{
    /// <summary>Writes one event (without flushing).</summary>
    ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken);

    /// <summary>Nothing happened for a while: keep the connection alive if the format allows it.</summary>
    ValueTask IdleAsync(CancellationToken cancellationToken);

    /// <summary>Sends what was written.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);
}

/// <summary>Follows a request's event log for one connection, live, from any event id onward.</summary>
internal static class LogFollower
{
    /// <summary>
    /// Hands the events after <paramref name="afterId"/>, and every later one, to <paramref name="sink"/> until the
    /// request ends or the client leaves; calls <see cref="IEventSink.IdleAsync"/> after each quiet interval.
    /// While following, the connection holds the request (see <see cref="LiveRequest.Attach"/>).
    /// </summary>
    public static async Task FollowAsync(
        LiveRequest request, long afterId, IEventSink sink, TimeSpan idleInterval, TimeProvider time, CancellationToken cancellationToken)
    {
        using var attachment = request.Attach();
        var batch = new List<StreamEvent>();
        long last = afterId;
        while (true)
        {
            batch.Clear();
            bool complete = request.Events.CopyAfter(last, batch, out var appended);
            foreach (var streamEvent in batch)
            {
                await sink.WriteAsync(streamEvent, cancellationToken);
                last = streamEvent.Id;
            }

            if (batch.Count > 0)
            {
                await sink.FlushAsync(cancellationToken);
            }

            if (complete)
            {
                return;
            }

            try
            {
                await appended.WaitAsync(idleInterval, time, cancellationToken);
            }
            catch (TimeoutException)
            {
                await sink.IdleAsync(cancellationToken);
                await sink.FlushAsync(cancellationToken);
            }
        }
    }
}
