using System.Net;
using System.Text;
using System.Text.Json;
using Anteroom.DropIn;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// What the gateway checks in a relayed body is what the backend reads: no spelling of a field, repeat or case
/// variant, lets a backend that matches names ignoring case (Go) or takes the last of two (Python) read another value.
/// </summary>
public sealed class FieldSpellingTests
{
    internal const string Small = "small:1b";
    internal const string Big = "big:70b";
    internal const string SmallOnOpenAI = "small-oa:1b";
    internal const string BigOnOpenAI = "big-oa:70b";
    internal const int Cap = 8;

    /// <summary>Keys mode; tier "small" may use only the small model of each backend, with an output cap; both backends record the bodies they get.</summary>
    internal static async Task<(TestGateway Gateway, HttpClient Client)> StartAsync()
    {
        static Simulator.SimulatorOptions Serving(params string[] models)
        {
            var options = TestGateway.FastSimulator();
            options.Models = models;
            options.RecordBodies = 1000;
            return options;
        }

        var gateway = await TestGateway.StartAsync(
            [
                new TestBackend(OllamaBackend, Serving(Small, Big), Slots: 4, Protocol: "ollama"),
                new TestBackend(OpenAIBackend, Serving(SmallOnOpenAI, BigOnOpenAI), Slots: 4, Protocol: "openai"),
            ],
            new Dictionary<string, string?>
            {
                ["Anteroom:Auth:Mode"] = "keys",
                ["Anteroom:Tiers:small:Models:0"] = Small,
                ["Anteroom:Tiers:small:Models:1"] = SmallOnOpenAI,
                ["Anteroom:Tiers:small:MaxOutputTokens"] = Cap.ToString(System.Globalization.CultureInfo.InvariantCulture),
            });
        return (gateway, gateway.KeyClient(await gateway.CreateKeyAsync("mallory", tier: "small")));
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public void GoFold_TakesTheLongSAndTheKelvinSignAndBothTurkishIsToAsciiLetters_AsTheGatewayDoes()
    {
        foreach (var (name, expected) in new[] { ("ſtream", "STREAM"), ("\u212Aey", "KEY"), ("opt\u0131ons", "OPTIONS"), ("\u0130nput", "INPUT"), ("Max_Tokens", "MAX_TOKENS") })
        {
            byte[] folded = new byte[64];
            int length = JsonBodyCheck.Fold(Encoding.UTF8.GetBytes(name), folded);

            Assert.Equal(expected, GoStyleJson.Fold(name));
            Assert.Equal(expected, Encoding.UTF8.GetString(folded, 0, length));
        }
    }

    [Fact]
    public async Task TheReportedOllamaAttack_ModelAndOptionsRepeatedInAnotherCase_IsRefusedWith400NamingTheField()
    {
        var ct = Within30Seconds();
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;
        string attack = $$"""{"model":"{{Small}}","Model":"{{Big}}","options":{"num_predict":10},"Options":{"num_predict":100000},"messages":[{"role":"user","content":"hi"}],"stream":false}""";

        using var response = await client.PostAsync("api/chat", Json(attack), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("'Model'", (await ErrorAsync(response, ct)).GetString(), StringComparison.Ordinal);
        Assert.Empty(gateway.Simulator(OllamaBackend).ReceivedBodies);
    }

    [Theory]
    [InlineData("""{"model":"small-oa:1b","MODEL":"big-oa:70b","Max_Tokens":100000,"messages":[{"role":"user","content":"hi"}]}""", "MODEL", "duplicate_field")]
    [InlineData("""{"model":"small-oa:1b","Max_Tokens":100000,"messages":[{"role":"user","content":"hi"}]}""", "Max_Tokens", "ambiguous_field")]
    [InlineData("""{"model":"small-oa:1b","max_tokenſ":100000,"messages":[{"role":"user","content":"hi"}]}""", "max_tokenſ", "ambiguous_field")]
    [InlineData("""{"model":"small-oa:1b","stream":false,"stream":false,"messages":[{"role":"user","content":"hi"}]}""", "stream", "duplicate_field")]
    public async Task TheReportedOpenAIAttack_AndEveryCaseVariantOrRepeatOfAField_IsRefusedWith400InTheOpenAIShape(string body, string field, string code)
    {
        var ct = Within30Seconds();
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;

        using var response = await client.PostAsync("v1/chat/completions", Json(body), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorAsync(response, ct);
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Empty(gateway.Simulator(OpenAIBackend).ReceivedBodies);
    }

    /// <summary>
    /// Crafted and generated bodies, every spelling of model, output length and stream (case variants, runes Go
    /// folds to ASCII, escapes, repeats, in any order): each one the gateway accepts reaches the backend, and there
    /// a Go-style decoder reads the model the tier allows, an output length within the cap, and the stream setting
    /// the gateway answered with.
    /// </summary>
    [Fact]
    public async Task EveryBodyTheGatewayAccepts_DecodesUnderGoRulesToTheModelCapAndStreamTheGatewayChecked()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;
        var bodies = Bodies(new Random(9)).Take(400).ToList();

        int accepted = 0;
        var failures = new List<string>();
        await Parallel.ForEachAsync(bodies, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (probe, token) =>
        {
            using var response = await client.PostAsync(probe.Path, Json(probe.Body), token);
            string answer = await response.Content.ReadAsStringAsync(token);
            if (!response.IsSuccessStatusCode)
            {
                return;
            }

            Interlocked.Increment(ref accepted);
            var backend = probe.Ollama ? OllamaBackend : OpenAIBackend;
            var received = gateway.Simulator(backend).ReceivedBodies.Single(b => Encoding.UTF8.GetString(b.Body).Contains(probe.Marker, StringComparison.Ordinal));
            using var relayed = JsonDocument.Parse(received.Body);
            var root = relayed.RootElement;
            string? model = GoStyleJson.Field(root, "model")?.GetString();
            long? length = probe.Ollama
                ? GoStyleJson.Field(root, "options", "num_predict")?.GetInt64()
                : GoStyleJson.Field(root, "max_tokens")?.GetInt64();
            bool goStreams = GoStyleJson.Field(root, "stream") is { ValueKind: JsonValueKind.True } || (probe.Ollama && GoStyleJson.Field(root, "stream") is null);
            bool gatewayStreamed = response.Content.Headers.ContentType?.MediaType is "application/x-ndjson" or "text/event-stream";
            if (model != (probe.Ollama ? Small : SmallOnOpenAI) || length is null or < 1 or > Cap || goStreams != gatewayStreamed)
            {
                lock (failures)
                {
                    failures.Add($"{probe.Path} {probe.Body} → relayed {Encoding.UTF8.GetString(received.Body)}: Go reads model {model}, length {length}, stream {goStreams}; gateway streamed {gatewayStreamed}");
                }
            }
        });

        Assert.Empty(failures);
        // Not vacuous: plenty of plain bodies pass, and plenty of tricks are turned away.
        Assert.InRange(accepted, 40, bodies.Count - 40);
    }

    private sealed record Probe(string Path, string Body, string Marker, bool Ollama);

    private static readonly string[] ModelKeys = ["model", "Model", "MODEL", "mode\u0141", "\\u006dodel", "m\\u006fdel", "Mod\\u0065l"];
    private static readonly string[] StreamKeys = ["stream", "Stream", "ſtream", "\\u017ftream", "STREAM"];
    private static readonly string[] OptionsKeys = ["options", "Options", "opt\u0131ons", "OPTIONS"];
    private static readonly string[] NumPredictKeys = ["num_predict", "Num_Predict", "num_pred\u0131ct", "NUM_PREDICT"];
    private static readonly string[] MaxTokensKeys = ["max_tokens", "Max_Tokens", "max_tokenſ", "max_to\u212Aens", "MAX_TOKENS"];

    /// <summary>The attacks of the report first, then random mixtures of spellings, repeats and orders.</summary>
    private static IEnumerable<Probe> Bodies(Random random)
    {
        int next = 0;
        string Marker() => $"probe-{next++}";

        foreach (var path in new[] { "api/chat", "api/generate", "v1/chat/completions", "v1/completions" })
        {
            bool ollama = path.StartsWith("api/", StringComparison.Ordinal);
            string small = ollama ? Small : SmallOnOpenAI;
            string big = ollama ? Big : BigOnOpenAI;
            string marker = Marker();
            string lengthPart = ollama ? "\"options\":{\"num_predict\":4}" : "\"max_tokens\":4";
            yield return new Probe(path, $"{{\"model\":\"{small}\",{Text(path, marker)},{lengthPart},\"stream\":false}}", marker, ollama);
            marker = Marker();
            yield return new Probe(path, ollama
                ? $"{{\"model\":\"{small}\",\"Model\":\"{big}\",\"options\":{{\"num_predict\":4}},\"Options\":{{\"num_predict\":100000}},{Text(path, marker)},\"stream\":false}}"
                : $"{{\"model\":\"{small}\",\"MODEL\":\"{big}\",\"Max_Tokens\":100000,{Text(path, marker)}}}", marker, ollama);
        }

        while (true)
        {
            string path = random.GetItems<string>(["api/chat", "api/generate", "v1/chat/completions", "v1/completions"], 1)[0];
            bool ollama = path.StartsWith("api/", StringComparison.Ordinal);
            string small = ollama ? Small : SmallOnOpenAI;
            string big = ollama ? Big : BigOnOpenAI;
            string marker = Marker();
            var parts = new List<string> { Text(path, marker) };
            for (int i = random.Next(5) == 0 ? 2 : 1; i > 0; i--)
            {
                parts.Add($"\"{Pick(random, ModelKeys)}\":\"{(random.Next(4) == 0 ? big : small)}\"");
            }

            for (int i = random.Next(5) == 0 ? 2 : random.Next(2); i > 0; i--)
            {
                parts.Add($"\"{Pick(random, StreamKeys)}\":{(random.Next(2) == 0 ? "true" : "false")}");
            }

            for (int i = random.Next(5) == 0 ? 2 : random.Next(2); i > 0; i--)
            {
                string length = Length(random);
                parts.Add(ollama
                    ? $"\"{Pick(random, OptionsKeys)}\":{{\"{Pick(random, NumPredictKeys)}\":{length}{(random.Next(3) == 0 ? $",\"{Pick(random, NumPredictKeys)}\":{Length(random)}" : "")}}}"
                    : $"\"{Pick(random, MaxTokensKeys)}\":{length}");
            }

            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(parts));
            yield return new Probe(path, "{" + string.Join(',', parts) + "}", marker, ollama);
        }
    }

    /// <summary>The field's own spelling three times in four, so that enough bodies pass to say something.</summary>
    private static string Pick(Random random, string[] keys) => random.Next(4) == 0 ? keys[random.Next(1, keys.Length)] : keys[0];

    private static string Length(Random random) => random.Next(3) switch
    {
        0 => "100000",
        1 => "-1",
        _ => random.Next(1, Cap + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string Text(string path, string marker) => path.EndsWith("completions", StringComparison.Ordinal) && !path.Contains("chat", StringComparison.Ordinal)
        || path == "api/generate"
        ? $"\"prompt\":\"{marker}\""
        : $"\"messages\":[{{\"role\":\"user\",\"content\":\"{marker}\"}}]";
}
