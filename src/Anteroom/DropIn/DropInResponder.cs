using System.IO.Pipelines;
using Anteroom.Requests;

namespace Anteroom.DropIn;

/// <summary>
/// The life of one drop-in answer, whatever its API: a stream sends its headers at once and then follows the
/// request's events; a non-streaming answer waits quietly for the end and is written once. Either way the
/// connection holds the request from its admission (<see cref="Reply.Hold"/>, released by the endpoint when this
/// returns), so a client that leaves stops it — even one that leaves before the answer has started.
/// </summary>
internal abstract class DropInResponder(HttpContext context, LiveRequest request, DropInDesk desk, bool stream) : IEventSink
{
    protected LiveRequest Request => request;

    protected DropInDesk Desk => desk;

    protected PipeWriter Writer { get; } = context.Response.BodyWriter;

    public async Task RespondAsync()
    {
        var aborted = context.RequestAborted;
        context.Response.Headers["X-Request-Id"] = request.Id;
        try
        {
            if (stream)
            {
                context.Response.StatusCode = StatusCodes.Status200OK;
                PrepareStream(context.Response);
                await context.Response.StartAsync(aborted);
                await LogFollower.FollowAsync(request, 0, this, desk.KeepAlive, aborted);
                return;
            }

            var ending = await request.Ended.WaitAsync(aborted);
            await Answer(ending).ExecuteAsync(context);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException && aborted.IsCancellationRequested)
        {
            // The client left; releasing the endpoint's hold on return stops the request and its backend call.
        }
    }

    /// <summary>Sets the stream's content type and headers; the status is already 200.</summary>
    protected abstract void PrepareStream(HttpResponse response);

    /// <summary>The whole answer of a non-streaming request that ended as <paramref name="ending"/>.</summary>
    protected abstract IResult Answer(RequestEnding ending);

    public abstract ValueTask WriteAsync(StreamEvent streamEvent, CancellationToken cancellationToken);

    public abstract ValueTask IdleAsync(CancellationToken cancellationToken);

    public async ValueTask<bool> FlushAsync(CancellationToken cancellationToken) => !(await Writer.FlushAsync(cancellationToken)).IsCanceled;

    public void CancelFlush() => Writer.CancelPendingFlush();

    public abstract void WriteCutOff(long lastId, string code, string message);
}
