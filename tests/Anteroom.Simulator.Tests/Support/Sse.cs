using System.Text.Json;

namespace Anteroom.Simulator.Tests.Support;

/// <summary>Reads an OpenAI event stream strictly: every event is exactly one <c>data: </c> line and a blank line.</summary>
internal static class Sse
{
    public const string Done = "[DONE]";

    public static async Task<List<string>> EventsAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        return Parse(body);
    }

    public static List<string> Parse(string body)
    {
        Assert.EndsWith("\n\n", body, StringComparison.Ordinal);
        var events = body[..^2].Split("\n\n");
        foreach (var e in events)
        {
            Assert.StartsWith("data: ", e, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e);
        }

        return events.Select(e => e["data: ".Length..]).ToList();
    }

    /// <summary>The JSON chunks before <c>[DONE]</c>, which must be the last event.</summary>
    public static List<JsonElement> Chunks(List<string> events)
    {
        Assert.Equal(Done, events[^1]);
        Assert.Single(events, e => e == Done);
        return events[..^1].Select(Sim.Json).ToList();
    }
}
