using System.IO.Pipelines;
using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.DropIn;
using Anteroom.Identity;
using Anteroom.Native;
using Anteroom.Requests;
using Anteroom.Scheduling;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Anteroom.Benchmarks;

/// <summary>
/// The per-token path of a translated stream: one token appended to a request's event log, read back as a follower
/// reads it, and written by two clients' sinks — an OpenAI chat stream and a native SSE stream — each into its own pipe,
/// flushed and drained. One invocation is one token.
/// </summary>
[Config(typeof(TokenPathBenchmarkConfig))]
public class TokenPathBenchmarks
{
    private const string Text = " hello";

    private readonly List<StreamEvent> _batch = new(1);
    private LiveRequest _request = null!;
    private long _lastId;
    private IEventSink _openAI = null!;
    private IEventSink _native = null!;
    private Pipe _openAIPipe = null!;
    private Pipe _nativePipe = null!;

    [GlobalSetup]
    public void CreateRequest()
    {
        var scheduler = new Scheduler(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])]);
        var ticket = scheduler.Admit(new TicketRequest { Id = "req_0123456789abcdef", Owner = "user", Model = "m" }).Ticket!;
        var generation = new GenerationRequest { Model = "m", Messages = [] };
        var caller = new Caller("user", "user", TierOptions.DefaultName, new TierOptions(), null, false, false);
        // The shipped stream buffer: the log drops its oldest tokens as a long answer goes on, as in production.
        _request = new LiveRequest(
            ticket, new Arrival(caller, generation), TimeProvider.System, new InProcessEventLog(new StreamOptions().MaxBufferedBytes, TimeProvider.System));

        _openAIPipe = new Pipe();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new PipeBody(_openAIPipe.Writer));
        // The desk serves only keep-alives and queue comments, which the token path never reaches.
        _openAI = new OpenAIResponder(context, _request, null!, OpenAIShape.Chat, new OpenAIRequest(generation, true, false, null, false));

        _nativePipe = new Pipe();
        _native = EventStream.Sink(_nativePipe.Writer);
    }

    [Benchmark]
    public void Token()
    {
        TokenPath.Append(_request, Text);
        _batch.Clear();
        // The in-process log reads synchronously: the value task is complete when returned.
        _request.Events.ReadAfterAsync(_lastId, _batch).GetAwaiter().GetResult();
        _lastId = _batch[^1].Id;
        foreach (var streamEvent in _batch)
        {
            _openAI.WriteAsync(streamEvent, default).GetAwaiter().GetResult();
            _native.WriteAsync(streamEvent, default).GetAwaiter().GetResult();
        }

        Drain(_openAI, _openAIPipe);
        Drain(_native, _nativePipe);
    }

    private static void Drain(IEventSink sink, Pipe pipe)
    {
        sink.FlushAsync(default).AsTask().GetAwaiter().GetResult();
        if (pipe.Reader.TryRead(out var read))
        {
            pipe.Reader.AdvanceTo(read.Buffer.End);
        }
    }

    /// <summary>A response body that is a pipe, so the benchmark sees every byte the sink writes.</summary>
    private sealed class PipeBody(PipeWriter writer) : IHttpResponseBodyFeature
    {
        public Stream Stream => throw new NotSupportedException();

        public PipeWriter Writer => writer;

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => Task.CompletedTask;
    }
}
