using System.Net.Http.Headers;

namespace Anteroom.Backends.Http;

/// <summary>What differs between the protocols: routes, request bodies and how a response is read.</summary>
internal interface IBackendDialect
{
    BackendProtocol Protocol { get; }

    /// <summary>The chat route, relative to the base address.</summary>
    string ChatPath { get; }

    /// <summary>The text completion route, relative to the base address.</summary>
    string CompletionPath { get; }

    /// <summary>The embedding route, relative to the base address.</summary>
    string EmbedPath { get; }

    /// <summary>The model listing route, relative to the base address.</summary>
    string ModelsPath { get; }

    /// <summary>A streaming chat or completion body, as <see cref="GenerationRequest.Kind"/> says.</summary>
    HttpContent CreateGenerationContent(GenerationRequest request);

    /// <summary>Reads a chat or a completion stream; one reader serves both, since their chunks differ only in where the text sits.</summary>
    IChunkReader CreateChunkReader(Stream body, HttpContentHeaders headers);

    HttpContent CreateEmbedContent(string model, IReadOnlyList<string> inputs);

    /// <summary>Reads the vectors, in input order, from an embedding body; null when the body is JSON but not an embedding answer.</summary>
    ValueTask<EmbeddingResult?> ReadEmbeddingsAsync(Stream body, CancellationToken cancellationToken);

    /// <summary>Reads the model names from a listing body; null when the body is JSON but not a listing.</summary>
    ValueTask<IReadOnlyList<string>?> ReadModelsAsync(Stream body, CancellationToken cancellationToken);

    /// <summary>A fresh framing for one relayed response: it keeps per-stream state.</summary>
    IRelayFraming CreateRelayFraming();
}
