using Anteroom.Simulator.Http;
using Microsoft.AspNetCore.Http;

namespace Anteroom.Simulator.Ollama;

/// <summary>Ollama's error bodies, <c>{"error":"…"}</c>, with its exact texts where clients match on them.</summary>
internal static class OllamaErrors
{
    // Two spaces after the full stop, as Ollama writes it.
    public const string Busy = "server busy, please try again.  maximum pending requests exceeded";

    public static string ModelNotFound(string model) => $"model '{model}' not found";

    public static Task WriteAsync(HttpContext http, int status, string message) =>
        JsonResponse.WriteAsync(http, status, new OllamaError(message), SimulatorJson.Wire.OllamaError);
}
