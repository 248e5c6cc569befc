using Anteroom.Requests;

namespace Anteroom.Benchmarks;

/// <summary>How the generation runner records one translated token in the request's event log.</summary>
internal static class TokenPath
{
    public static void Append(LiveRequest request, string text) => request.Events.Append(new RequestEvent.Token(text));
}
