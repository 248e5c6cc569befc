using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Anteroom.Backends.Http;

/// <summary>The request/response choreography both protocols share; the <see cref="IBackendDialect"/> does the rest.</summary>
internal sealed class HttpModelServerClient : IModelServerClient
{
    // Error bodies are short; this only keeps a proxy's error page from being buffered without end.
    private const int MaxRelayedErrorBodyBytes = 1024 * 1024;
    private const int MaxRememberedRelayUris = 64;

    private readonly IBackendDialect _dialect;
    private readonly HttpClient _httpClient;
    private readonly Uri _baseAddress;
    // The relay paths already checked against the base address, so a request does not parse and check its path again.
    private readonly ConcurrentDictionary<string, Uri> _relayUris = new(StringComparer.Ordinal);
    private readonly Uri _chatUri;
    private readonly Uri _completionUri;
    private readonly Uri _embedUri;
    private readonly Uri _modelsUri;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _timeProvider;
    private readonly int _maxAnswerBytes;

    public HttpModelServerClient(
        IBackendDialect dialect, HttpClient httpClient, Uri baseAddress, TimeSpan idleTimeout, TimeProvider timeProvider, int maxAnswerBytes)
    {
        // A whole relayed body is held to read its usage; embeddings of a large batch are the biggest ones.
        _maxAnswerBytes = maxAnswerBytes;
        _dialect = dialect;
        _httpClient = httpClient;
        _baseAddress = baseAddress;
        _chatUri = new Uri(baseAddress, dialect.ChatPath);
        _completionUri = new Uri(baseAddress, dialect.CompletionPath);
        _embedUri = new Uri(baseAddress, dialect.EmbedPath);
        _modelsUri = new Uri(baseAddress, dialect.ModelsPath);
        _idleTimeout = idleTimeout;
        _timeProvider = timeProvider;
    }

    public BackendProtocol Protocol => _dialect.Protocol;

    public async IAsyncEnumerable<GenerationChunk> StreamChatAsync(
        GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Kind == GenerationKind.Completion && request.Prompt is null)
        {
            throw new ArgumentException("A completion needs a prompt.", nameof(request));
        }

        GenerationChunk last = default;
        var backendFinished = false;
        var uri = request.Kind == GenerationKind.Completion ? _completionUri : _chatUri;
        using (var call = new UpstreamCall(_idleTimeout, _timeProvider, cancellationToken))
        using (var message = new HttpRequestMessage(HttpMethod.Post, uri) { Content = _dialect.CreateGenerationContent(request) })
        {
            try
            {
                if (await call.SendAsync(_httpClient, message).ConfigureAwait(false) is { } failure)
                {
                    last = GenerationChunk.Failed(failure);
                    // An error status comes with a complete body: the backend is done with this request.
                    backendFinished = failure.StatusCode is not null;
                }
                else
                {
                    var reader = _dialect.CreateChunkReader(call.Body, call.ContentHeaders);
                    await using (reader.ConfigureAwait(false))
                    {
                        while ((last = await ReadChunkAsync(call, reader).ConfigureAwait(false)).Kind == GenerationChunkKind.Token)
                        {
                            yield return last;
                        }
                    }

                    backendFinished = last.Kind == GenerationChunkKind.Done;
                }
            }
            finally
            {
                // Any other ending — a failure, the caller leaving, the consumer stopping early — may leave the
                // backend generating for no one; closing the connection is what makes it stop.
                if (!backendFinished)
                {
                    call.Abort();
                }
            }
        }

        // Yielded after the response is disposed, so the connection goes back to the pool (or is closed) while the
        // consumer is still busy with the end of the generation.
        yield return last;
    }

    public async Task<EmbeddingResult> EmbedAsync(string model, IReadOnlyList<string> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0)
        {
            throw new ArgumentException("There is nothing to embed.", nameof(inputs));
        }

        using var call = new UpstreamCall(_idleTimeout, _timeProvider, cancellationToken);
        using var message = new HttpRequestMessage(HttpMethod.Post, _embedUri) { Content = _dialect.CreateEmbedContent(model, inputs) };
        if (await call.SendAsync(_httpClient, message).ConfigureAwait(false) is { } failure)
        {
            return new EmbeddingResult([], 0, failure);
        }

        try
        {
            return await _dialect.ReadEmbeddingsAsync(call.Body, call.Token).ConfigureAwait(false) is { } result
                && result.Vectors.Count == inputs.Count
                ? result
                : new EmbeddingResult(
                    [], 0, new BackendError(BackendFailure.ProtocolViolation, $"POST {_dialect.EmbedPath} did not answer with one vector per input."));
        }
        catch (JsonException ex)
        {
            call.Abort();
            return new EmbeddingResult([], 0, new BackendError(BackendFailure.ProtocolViolation, ex.Message));
        }
        catch (Exception ex) when (call.IsTransportFailure(ex))
        {
            call.Abort();
            return new EmbeddingResult([], 0, call.Classify(ex, BackendFailure.Disconnected));
        }
    }

    public async IAsyncEnumerable<RelayChunk> RelayAsync(RelayRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Path);
        var uri = RelayUri(request.Path);

        RelayChunk last = default;
        var backendFinished = false;
        using (var call = new UpstreamCall(_idleTimeout, _timeProvider, cancellationToken))
        using (var message = new HttpRequestMessage(HttpMethod.Post, uri) { Content = JsonContent(request.Body) })
        {
            try
            {
                if (await call.ReceiveHeadersAsync(_httpClient, message).ConfigureAwait(false) is { } failure)
                {
                    last = RelayChunk.Failed(failure);
                }
                else
                {
                    yield return RelayChunk.Head(call.StatusCode, call.ContentHeaders.ContentType?.ToString());
                    if (!call.IsSuccessStatusCode)
                    {
                        using var body = new PooledBody();
                        var cut = await ReadWholeAsync(call, body, MaxRelayedErrorBodyBytes).ConfigureAwait(false);
                        last = RelayChunk.Failed(call.ErrorStatus(body.Bytes.Span), errorWasRelayed: true);
                        backendFinished = cut is null && body.Complete;
                        yield return RelayChunk.Data(body.Bytes);
                    }
                    else if (IsStream(call.ContentHeaders.ContentType?.MediaType, request.Streaming))
                    {
                        using var reader = new RelayFrameReader(call.Body, _dialect.CreateRelayFraming());
                        while ((last = await ReadRelayChunkAsync(call, reader).ConfigureAwait(false)).Kind == RelayChunkKind.Data)
                        {
                            yield return last;
                        }

                        backendFinished = reader.BackendFinished;
                    }
                    else
                    {
                        using var body = new PooledBody();
                        if (await ReadWholeAsync(call, body, _maxAnswerBytes).ConfigureAwait(false) is { } cut)
                        {
                            last = RelayChunk.Failed(cut);
                        }
                        else if (!body.Complete)
                        {
                            last = RelayChunk.Failed(new BackendError(
                                BackendFailure.TooLarge, $"The answer is larger than the {_maxAnswerBytes} bytes this gateway holds for one request."));
                        }
                        else
                        {
                            backendFinished = true;
                            var verdict = _dialect.CreateRelayFraming().InspectBody(body.Bytes.Span);
                            last = verdict.Kind switch
                            {
                                FrameKind.End => RelayChunk.Done(verdict.Usage, verdict.FinishReason),
                                FrameKind.Error => RelayChunk.Failed(new BackendError(BackendFailure.StreamError, verdict.Message!), errorWasRelayed: true),
                                // Not relayed, so the gateway can answer its client in that client's own protocol.
                                _ => RelayChunk.Failed(new BackendError(BackendFailure.ProtocolViolation, verdict.Message!)),
                            };
                            if (verdict.Kind is FrameKind.End or FrameKind.Error)
                            {
                                yield return RelayChunk.Data(body.Bytes, verdict.ContentPieces);
                            }
                        }
                    }
                }
            }
            finally
            {
                // As in StreamChatAsync: only a response read to its protocol's end leaves the backend idle.
                if (!backendFinished)
                {
                    call.Abort();
                }
            }
        }

        // After the response is released, so a finished connection is back in the pool before the consumer moves on.
        yield return last;
    }

    public async Task<ModelListResult> ListModelsAsync(CancellationToken cancellationToken = default)
    {
        using var call = new UpstreamCall(_idleTimeout, _timeProvider, cancellationToken);
        using var message = new HttpRequestMessage(HttpMethod.Get, _modelsUri);
        if (await call.SendAsync(_httpClient, message).ConfigureAwait(false) is { } failure)
        {
            return new ModelListResult([], failure);
        }

        try
        {
            return await _dialect.ReadModelsAsync(call.Body, call.Token).ConfigureAwait(false) is { } models
                ? new ModelListResult(models, null)
                : new ModelListResult([], new BackendError(BackendFailure.ProtocolViolation, $"GET {_dialect.ModelsPath} did not answer with a model list."));
        }
        catch (JsonException ex)
        {
            call.Abort();
            return new ModelListResult([], new BackendError(BackendFailure.ProtocolViolation, ex.Message));
        }
        catch (Exception ex) when (call.IsTransportFailure(ex))
        {
            call.Abort();
            return new ModelListResult([], call.Classify(ex, BackendFailure.Disconnected));
        }
    }

    // Outside the iterator because an iterator cannot yield from a try block that has a catch.
    private static async ValueTask<GenerationChunk> ReadChunkAsync(UpstreamCall call, IChunkReader reader)
    {
        // The abort callback may already have torn the response down while the consumer held the last chunk.
        call.ThrowIfCallerCancelled();
        try
        {
            return await reader.ReadAsync(call.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (call.IsTransportFailure(ex))
        {
            return GenerationChunk.Failed(call.Classify(ex, BackendFailure.Disconnected));
        }
    }

    private static async ValueTask<RelayChunk> ReadRelayChunkAsync(UpstreamCall call, RelayFrameReader reader)
    {
        call.ThrowIfCallerCancelled();
        try
        {
            return await reader.ReadAsync(call.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (call.IsTransportFailure(ex))
        {
            return reader.Fail(call.Classify(ex, BackendFailure.Disconnected));
        }
    }

    // Null when the body was read (to its end or to the limit); what arrived before a failure stays in the body.
    private static async ValueTask<BackendError?> ReadWholeAsync(UpstreamCall call, PooledBody body, int maxBytes)
    {
        call.ThrowIfCallerCancelled();
        try
        {
            await body.ReadAsync(call.Body, maxBytes, call.ContentHeaders.ContentLength, call.Token).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (call.IsTransportFailure(ex))
        {
            return call.Classify(ex, BackendFailure.Disconnected);
        }
    }

    // The response says what it is when it can; the client's flag decides only for content types we do not know.
    private static bool IsStream(string? mediaType, bool streamingAsked) => mediaType?.ToLowerInvariant() switch
    {
        "application/json" => false,
        "text/event-stream" or "application/x-ndjson" => true,
        _ => streamingAsked,
    };

    // Like JsonBody: the bytes as they are, with a Content-Length.
    private static ReadOnlyMemoryContent JsonContent(ReadOnlyMemory<byte> body)
    {
        var content = new ReadOnlyMemoryContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private Uri RelayUri(string path)
    {
        if (_relayUris.TryGetValue(path, out var known))
        {
            return known;
        }

        var checkedUri = CheckedRelayUri(path);
        // The relayed paths are the few routes of the drop-in APIs; the bound keeps odd ones from growing the map.
        if (_relayUris.Count < MaxRememberedRelayUris)
        {
            _relayUris.TryAdd(path, checkedUri);
        }

        return checkedUri;
    }

    private Uri CheckedRelayUri(string path)
    {
        // Checked because the path may come from a client: it must not leave the backend's base address.
        if (path.StartsWith('/') || !Uri.TryCreate(path, UriKind.Relative, out var relative))
        {
            throw new ArgumentException($"'{path}' is not a path relative to the backend's base address.", "request");
        }

        var uri = new Uri(_baseAddress, relative);
        return _baseAddress.IsBaseOf(uri) && uri.Authority == _baseAddress.Authority
            ? uri
            : throw new ArgumentException($"'{path}' leads outside the backend's base address.", "request");
    }
}
