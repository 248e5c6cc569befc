using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Anteroom.Backends.Http;

/// <summary>The request/response choreography both protocols share; the <see cref="IBackendDialect"/> does the rest.</summary>
internal sealed class HttpModelServerClient : IModelServerClient
{
    private readonly IBackendDialect _dialect;
    private readonly HttpClient _httpClient;
    private readonly Uri _chatUri;
    private readonly Uri _modelsUri;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _timeProvider;

    public HttpModelServerClient(IBackendDialect dialect, HttpClient httpClient, Uri baseAddress, TimeSpan idleTimeout, TimeProvider timeProvider)
    {
        _dialect = dialect;
        _httpClient = httpClient;
        _chatUri = new Uri(baseAddress, dialect.ChatPath);
        _modelsUri = new Uri(baseAddress, dialect.ModelsPath);
        _idleTimeout = idleTimeout;
        _timeProvider = timeProvider;
    }

    public BackendProtocol Protocol => _dialect.Protocol;

    public async IAsyncEnumerable<GenerationChunk> StreamChatAsync(
        GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);

        GenerationChunk last = default;
        var backendFinished = false;
        using (var call = new UpstreamCall(_idleTimeout, _timeProvider, cancellationToken))
        using (var message = new HttpRequestMessage(HttpMethod.Post, _chatUri) { Content = _dialect.CreateChatContent(request) })
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
}
