using System.Buffers;
using System.Net.Http.Headers;

namespace Anteroom.Backends.Http;

/// <summary>
/// One HTTP exchange with a model server. Owns the response, the idle timer and the abort-on-cancel wiring, and
/// turns what goes wrong into a <see cref="BackendError"/> — except the caller leaving, which stays an exception.
/// </summary>
internal sealed class UpstreamCall : IDisposable
{
    // Error bodies are one short JSON object; reading more would only let a broken backend make us buffer.
    private const int MaxErrorBodyBytes = 16 * 1024;

    private readonly CancellationToken _callerToken;
    private readonly TimeSpan _idleTimeout;
    private readonly CancellationTokenSource _idle;
    private readonly CancellationTokenSource _linked;
    private HttpResponseMessage? _response;
    private UpstreamBodyStream? _body;
    private CancellationTokenRegistration _abortOnCancel;
    private int _aborted;

    public UpstreamCall(TimeSpan idleTimeout, TimeProvider timeProvider, CancellationToken callerToken)
    {
        _callerToken = callerToken;
        _idleTimeout = idleTimeout;
        // Created with the TimeProvider and an infinite delay so CancelAfter re-arms one timer from that provider.
        _idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(callerToken, _idle.Token);
    }

    /// <summary>Cancelled when the caller leaves or the backend goes quiet for too long.</summary>
    public CancellationToken Token => _linked.Token;

    /// <summary>The response body, read under the idle timer; valid after <see cref="SendAsync"/> returned null.</summary>
    public Stream Body { get; private set; } = Stream.Null;

    public HttpContentHeaders ContentHeaders => Response.Content.Headers;

    public int StatusCode => (int)Response.StatusCode;

    public bool IsSuccessStatusCode => Response.IsSuccessStatusCode;

    private HttpResponseMessage Response => _response ?? throw new InvalidOperationException("No response yet.");

    /// <summary>Sends the request and waits for the headers; null when the backend answered with a success status.</summary>
    public async Task<BackendError?> SendAsync(HttpClient httpClient, HttpRequestMessage request) =>
        await ReceiveHeadersAsync(httpClient, request).ConfigureAwait(false)
        ?? (Response.IsSuccessStatusCode ? null : await ReadErrorStatusAsync().ConfigureAwait(false));

    /// <summary>
    /// Sends the request and waits for the headers; null when a response arrived, whatever its status. The body is
    /// left unread for the caller.
    /// </summary>
    public async Task<BackendError?> ReceiveHeadersAsync(HttpClient httpClient, HttpRequestMessage request)
    {
        HttpResponseMessage response;
        ArmIdleTimer();
        try
        {
            response = await httpClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportFailure(ex))
        {
            var error = Classify(ex, BackendFailure.Unreachable);
            // With no overall timeout on the client, a timeout before any answer that is neither the caller's nor
            // the idle timer's is the handler's connect timeout: no connection was made, as when one is refused.
            return error.Failure == BackendFailure.Stalled && !_idle.IsCancellationRequested && httpClient.Timeout == Timeout.InfiniteTimeSpan
                ? error with { Failure = BackendFailure.Unreachable }
                : error;
        }
        finally
        {
            DisarmIdleTimer();
        }

        _response = response;
        try
        {
            Body = _body = new UpstreamBodyStream(await response.Content.ReadAsStreamAsync(Token).ConfigureAwait(false), this);
        }
        catch (Exception ex) when (IsTransportFailure(ex))
        {
            return Classify(ex, BackendFailure.Disconnected);
        }

        // Whoever cancels — the caller leaving or the idle timer — ends the call at once, even while nobody is
        // reading, so the backend stops generating instead of filling socket buffers for no one.
        _abortOnCancel = Token.UnsafeRegister(static state => ((UpstreamCall)state!).Abort(), this);
        return null;
    }

    /// <summary>Names an error status, with the message found in the <paramref name="body"/> that came with it.</summary>
    public BackendError ErrorStatus(ReadOnlySpan<byte> body)
    {
        var status = StatusCode;
        // Ollama answers 503 when its queue is full; OpenAI-style servers use 429. Both mean "try another backend".
        var failure = status is 429 or 503 ? BackendFailure.Busy : BackendFailure.ErrorStatus;
        var message = BackendErrorText.FromBody(body)
            ?? (string.IsNullOrEmpty(Response.ReasonPhrase) ? $"HTTP {status}" : Response.ReasonPhrase);
        return new BackendError(failure, message, status);
    }

    /// <summary>
    /// Ends the call by closing the connection rather than handing it back for reuse: for every ending but a stream
    /// read to its end, since only then is the backend done with the request.
    /// </summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        // With a read running, disposing the response now would race that read; Dispose does it once the read ended.
        if (_body?.CloseConnectionNow() ?? true)
        {
            _response?.Dispose();
        }
    }

    public void ArmIdleTimer() => _idle.CancelAfter(_idleTimeout);

    // Time the consumer spends between reads (writing to a slow client, say) is not the backend stalling.
    public void DisarmIdleTimer() => _idle.CancelAfter(Timeout.InfiniteTimeSpan);

    public void ThrowIfCallerCancelled() => _callerToken.ThrowIfCancellationRequested();

    /// <summary>Whether <paramref name="exception"/> is the connection failing or being torn down, as opposed to a bug.</summary>
    public bool IsTransportFailure(Exception exception) => exception switch
    {
        HttpRequestException or IOException or OperationCanceledException => true,
        // A read already running when the abort callback disposed the response can fail this way.
        ObjectDisposedException => Token.IsCancellationRequested,
        _ => false,
    };

    /// <summary>
    /// Names a transport failure; <paramref name="otherwise"/> is what a plain connection failure means at this
    /// point of the exchange. Throws <see cref="OperationCanceledException"/> when the caller cancelled.
    /// </summary>
    public BackendError Classify(Exception exception, BackendFailure otherwise)
    {
        if (_callerToken.IsCancellationRequested)
        {
            // The caller leaving is not a backend failure; it surfaces as the cancellation it is.
            throw new OperationCanceledException("The caller cancelled the generation.", exception, _callerToken);
        }

        if (_idle.IsCancellationRequested)
        {
            return new BackendError(BackendFailure.Stalled, $"The backend sent nothing for {_idleTimeout.TotalSeconds:0.###} s.");
        }

        // Neither token fired, so this is HttpClient.Timeout running out before the headers arrived.
        return exception is OperationCanceledException
            ? new BackendError(BackendFailure.Stalled, $"The backend did not answer in time: {exception.Message}")
            : new BackendError(otherwise, exception.Message);
    }

    public void Dispose()
    {
        // First the registration: disposing it waits for a running abort callback, so nothing races the disposals below.
        // A response not aborted before is disposed gracefully, which lets the handler reuse the connection.
        _abortOnCancel.Dispose();
        _response?.Dispose();
        _linked.Dispose();
        _idle.Dispose();
    }

    private async Task<BackendError> ReadErrorStatusAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxErrorBodyBytes);
        try
        {
            var length = await Body.ReadAtLeastAsync(buffer.AsMemory(0, MaxErrorBodyBytes), MaxErrorBodyBytes, throwOnEndOfStream: false, Token)
                .ConfigureAwait(false);
            return ErrorStatus(buffer.AsSpan(0, length));
        }
        catch (Exception ex) when (IsTransportFailure(ex))
        {
            // The status alone answers the request; only the caller leaving changes what we report.
            ThrowIfCallerCancelled();
            return ErrorStatus([]);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
