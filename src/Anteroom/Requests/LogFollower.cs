namespace Anteroom.Requests;

/// <summary>What a connection does with a request's events: write them in its API's format.</summary>
internal interface IEventSink
{
    /// <summary>Writes one event (without flushing).</summary>
    ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken);

    /// <summary>Nothing happened for a while: keep the connection alive if the format allows it.</summary>
    ValueTask IdleAsync(CancellationToken cancellationToken);

    /// <summary>Sends what was written; false when <see cref="CancelFlush"/> cancelled it.</summary>
    ValueTask<bool> FlushAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Makes the pending flush, or the next one, return false at once. Unlike a flush cancelled through its token,
    /// which makes the server abort the connection, the connection stays usable for the stream's last words.
    /// </summary>
    void CancelFlush();

    /// <summary>
    /// Writes, as the stream's last words in its API's error shape, why the stream ends here without the request's
    /// own ending (without flushing). <paramref name="lastId"/> is the last event the reader was given.
    /// </summary>
    void WriteCutOff(long lastId, string code, string message);
}

/// <summary>
/// A request a connection can follow: one this replica runs (<see cref="LiveRequest"/>), or, in Redis mode, one
/// another replica runs (<see cref="RemoteRequest"/>).
/// </summary>
internal interface IFollowedRequest
{
    /// <summary>Its event log.</summary>
    IEventLog Events { get; }

    /// <summary>A connection's hold on it, so it is not stopped while the connection follows; dispose to let go.</summary>
    IDisposable Attach();

    /// <summary>Stops it, telling its holders why.</summary>
    void Stop(string reason);
}

/// <summary>Follows a request's event log for one connection, live, from any event id onward.</summary>
internal static class LogFollower
{
    /// <summary>The code a reader gets when the events it needs next are no longer kept.</summary>
    public const string SlowReader = "slow_reader";

    /// <summary>
    /// Hands the events after <paramref name="afterId"/>, and every later one, to <paramref name="sink"/> until the
    /// request ends or the client leaves; calls <see cref="IEventSink.IdleAsync"/> after each quiet interval.
    /// While following, the connection holds the request (see <see cref="LiveRequest.Attach"/>).
    /// </summary>
    /// <remarks>
    /// A reader that falls further behind than the log keeps (<see cref="IEventLog.MaxBytes"/>) — a client reading
    /// slower than the backend generates, or not at all — is cut off as soon as an event it still needs is dropped,
    /// even while its write is waiting for the client: it gets a <c>slow_reader</c> error in its API's shape, and
    /// the request is stopped (unless another reader still follows it), so the backend stops generating an answer
    /// nobody can receive whole. Holding the
    /// answer instead would let one slow client keep memory without bound; slowing the backend down to its pace
    /// would let it keep a GPU slot that others queue for.
    /// </remarks>
    public static async Task FollowAsync(
        IFollowedRequest request, long afterId, IEventSink sink, TimeSpan idleInterval, CancellationToken cancellationToken)
    {
        using var attachment = request.Attach();
        using var cursor = request.Events.Follow(afterId);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, cursor.Overran);
        // Falling behind stops a flush waiting for the client through the writer, not through the flush's token:
        // Kestrel aborts the connection when a flush's token is cancelled, and the slow_reader error written after
        // it would never reach the client. Writes and flushes take only the client's own token.
        using var cancelFlush = cursor.Overran.Register(sink.CancelFlush);
        var batch = new List<StreamEvent>();
        try
        {
            while (true)
            {
                batch.Clear();
                var read = await request.Events.ReadAfterAsync(cursor.Position, batch, cancellationToken);
                if (read == LogRead.Dropped)
                {
                    break;
                }

                foreach (var streamEvent in batch)
                {
                    await sink.WriteAsync(streamEvent, cancellationToken);
                    cursor.Position = streamEvent.Id;
                }

                if (batch.Count > 0 && !await sink.FlushAsync(cancellationToken))
                {
                    break;
                }

                if (read == LogRead.Complete)
                {
                    return;
                }

                if (!await request.Events.WaitAfterAsync(cursor.Position, idleInterval, linked.Token))
                {
                    await sink.IdleAsync(cancellationToken);
                    if (!await sink.FlushAsync(cancellationToken))
                    {
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cursor.Overran.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Fell behind while waiting for the next event: handled below like a read that found its events dropped.
        }

        // The request stops only when nobody else follows it: a second tab, or a reconnect that came in late, that
        // cannot keep up loses its own stream, not the answer the request's other readers are still taking.
        if (await request.Events.CountFollowersAsync(CancellationToken.None) <= 1)
        {
            request.Stop(SlowReader);
        }

        // Not flushed: the client is not taking what was written. The server sends it, as the client reads on,
        // when the handler returns; until then it holds no more than its own response buffer.
        sink.WriteCutOff(cursor.Position, SlowReader, SlowReaderMessage(request.Events.MaxBytes));
    }

    public static string SlowReaderMessage(long maxBytes) =>
        $"This stream fell more than {maxBytes} bytes behind the answer and was cut off; the request was stopped. Read the stream as it arrives.";
}
