using Anteroom.Backends.Http;
using Anteroom.Backends.Ollama;
using Anteroom.Backends.OpenAI;

namespace Anteroom.Backends;

/// <summary>Creates clients of model servers.</summary>
public static class ModelServerClient
{
    // The longest delay CancellationTokenSource.CancelAfter accepts.
    private static readonly TimeSpan MaxIdleTimeout = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>Creates a client that speaks <paramref name="protocol"/> to the server at <paramref name="baseAddress"/>.</summary>
    /// <param name="protocol">The wire protocol the server speaks.</param>
    /// <param name="httpClient">
    /// Sends the requests. The caller owns it and its handler (connection pooling, TLS, proxies); the client never
    /// disposes it and ignores its <see cref="HttpClient.BaseAddress"/>.
    /// </param>
    /// <param name="baseAddress">
    /// The server's root, such as <c>http://gpu-1:11434</c>. A path prefix is kept; the trailing slash is optional.
    /// For the OpenAI protocol it is the address <em>without</em> <c>/v1</c>.
    /// </param>
    /// <param name="options">Timeouts and clock; read once, here.</param>
    public static IModelServerClient Create(
        BackendProtocol protocol, HttpClient httpClient, Uri baseAddress, ModelServerClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(baseAddress);
        if (!baseAddress.IsAbsoluteUri)
        {
            throw new ArgumentException("The base address must be an absolute URI.", nameof(baseAddress));
        }

        options ??= new ModelServerClientOptions();
        var idleTimeout = options.IdleTimeout;
        if (idleTimeout != Timeout.InfiniteTimeSpan && (idleTimeout <= TimeSpan.Zero || idleTimeout > MaxIdleTimeout))
        {
            throw new ArgumentOutOfRangeException(
                nameof(options), idleTimeout, "IdleTimeout must be positive and at most 49 days, or Timeout.InfiniteTimeSpan.");
        }

        if (options.MaxAnswerBytes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxAnswerBytes, "MaxAnswerBytes must be positive.");
        }

        if (options.TimeProvider is null)
        {
            throw new ArgumentException("TimeProvider must not be null.", nameof(options));
        }

        IBackendDialect dialect = protocol switch
        {
            BackendProtocol.Ollama => OllamaDialect.Instance,
            BackendProtocol.OpenAI => OpenAIDialect.Instance,
            _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "Unknown backend protocol."),
        };

        return new HttpModelServerClient(dialect, httpClient, WithTrailingSlash(baseAddress), idleTimeout, options.TimeProvider, options.MaxAnswerBytes);
    }

    // Relative paths resolve against the last segment's parent, so "http://host/prefix" would lose "prefix".
    private static Uri WithTrailingSlash(Uri address) =>
        address.AbsolutePath.EndsWith('/') ? address : new UriBuilder(address) { Path = address.AbsolutePath + "/" }.Uri;
}
