using System.Net.Http.Headers;

namespace Anteroom.Backends.Http;

/// <summary>What differs between the protocols: routes, request bodies and how a response is read.</summary>
internal interface IBackendDialect
{
    BackendProtocol Protocol { get; }

    /// <summary>The chat route, relative to the base address.</summary>
    string ChatPath { get; }

    /// <summary>The model listing route, relative to the base address.</summary>
    string ModelsPath { get; }

    HttpContent CreateChatContent(GenerationRequest request);

    IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers);

    /// <summary>Reads the model names from a listing body; null when the body is JSON but not a listing.</summary>
    ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken);
}
