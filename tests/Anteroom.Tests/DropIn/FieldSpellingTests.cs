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

    /// <summary>
    /// Go's fold written out rune by rune, from encoding/json's <c>appendFoldedName</c> (ASCII a-z to A-Z; any other
    /// rune to <c>unicode.ToUpper(unicode.ToLower(r))</c>) and the simple case mappings of UnicodeData.txt that Go's
    /// tables hold, so that the gateway's fold and the test decoder's are each checked against Go, not each other.
    /// </summary>
    [Theory]
    [InlineData("max_tokens", "MAX_TOKENS")]
    [InlineData("Max_Tokens-09", "MAX_TOKENS-09")]
    [InlineData("\u017Ftream", "STREAM")] // long s: lower is itself, upper 'S'
    [InlineData("\u212Aey", "KEY")] // Kelvin sign: lower 'k', upper 'K'
    [InlineData("opt\u0131ons", "OPTIONS")] // dotless i: lower is itself, upper 'I'
    [InlineData("\u0130nput", "INPUT")] // I with dot above: lower 'i', upper 'I'
    [InlineData("\u212B", "\u00C5")] // Angstrom sign: lower U+00E5, upper U+00C5, not ASCII
    [InlineData("\u00E9t\u00C9", "\u00C9T\u00C9")] // e acute either case: U+00C9
    [InlineData("\u00DF", "\u00DF")] // sharp s: no simple upper case, stays
    [InlineData("\u1E9E", "\u00DF")] // capital sharp s: lower U+00DF, which has no upper
    [InlineData("\u03C2\u03C3\u03A3", "\u03A3\u03A3\u03A3")] // final, small and capital sigma: all U+03A3
    [InlineData("\u00B5", "\u039C")] // micro sign: lower is itself, upper Greek capital mu
    [InlineData("\u01C5", "\u01C4")] // title-case DZ with caron: lower U+01C6, upper U+01C4
    [InlineData("\u65E5\u20AC\U0001F389", "\u65E5\u20AC\U0001F389")] // no case: unchanged
    public void GoFold_OfTheGatewayAndOfTheTestDecoder_MatchGosFoldRuneByRune(string name, string expected)
    {
        byte[] folded = new byte[64];
        int length = JsonBodyCheck.Fold(Encoding.UTF8.GetBytes(name), folded);

        Assert.Equal(expected, Encoding.UTF8.GetString(folded, 0, length));
        Assert.Equal(expected, GoStyleJson.Fold(name));
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
    /// Even where a backend reads exact-key maps (a tool's parameter properties), two names differing only in case
    /// are refused: which places are maps differs by backend and version (see JsonBodyCheck).
    /// </summary>
    [Fact]
    public async Task ToolSchemaPropertiesDifferingOnlyInCase_AreRefusedWith400NamingTheSecond()
    {
        var ct = Within30Seconds();
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;
        string body = """{"model":"small-oa:1b","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"id":{"type":"string"},"ID":{"type":"string"}}}}}]}""";

        using var response = await client.PostAsync("v1/chat/completions", Json(body), ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorAsync(response, ct);
        Assert.Equal("duplicate_field", error.GetProperty("code").GetString());
        Assert.Equal("tools[0].function.parameters.properties.ID", error.GetProperty("param").GetString());
    }

    /// <summary>
    /// Crafted and generated bodies, every spelling of the fields the gateway reads (model, stream, each output
    /// length, options, stream_options, a message's role and content: case variants, runes Go folds to ASCII,
    /// escapes, repeats, in any order). Each is either refused for one of the reasons below or reaches the backend,
    /// and there a Go-style decoder reads every one of those fields exactly as an exact-name reader does — the model
    /// the tier allows, output lengths within the cap, the prompt the gateway estimated.
    /// </summary>
    [Fact]
    public async Task EveryBodyTheGatewayAccepts_DecodesUnderGoRulesToWhatTheGatewayChecked_AndEveryOtherIsRefusedForAStatedReason()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;
        var bodies = Bodies(new Random(9)).Take(800).ToList();

        var outcomes = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await Parallel.ForEachAsync(bodies, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (probe, token) =>
        {
            using var response = await client.PostAsync(probe.Path, Json(probe.Body), token);
            string answer = await response.Content.ReadAsStringAsync(token);
            if (!response.IsSuccessStatusCode)
            {
                string reason = RefusalReason(probe, (int)response.StatusCode, answer);
                outcomes.AddOrUpdate(reason, 1, (_, n) => n + 1);
                if (reason.StartsWith("unexpected", StringComparison.Ordinal))
                {
                    failures.Enqueue($"{probe.Path} {probe.Body} → {reason}");
                }

                return;
            }

            outcomes.AddOrUpdate("accepted", 1, (_, n) => n + 1);
            var backend = probe.Ollama ? OllamaBackend : OpenAIBackend;
            var received = gateway.Simulator(backend).ReceivedBodies.Single(b => Encoding.UTF8.GetString(b.Body).Contains(probe.Marker, StringComparison.Ordinal));
            using var relayed = JsonDocument.Parse(received.Body);
            bool gatewayStreamed = response.Content.Headers.ContentType?.MediaType is "application/x-ndjson" or "text/event-stream";
            foreach (string problem in GoReadProblems(probe, relayed.RootElement, gatewayStreamed))
            {
                failures.Enqueue($"{probe.Path} {probe.Body} → relayed {Encoding.UTF8.GetString(received.Body)}: {problem}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join('\n', failures));
        // Not vacuous: plenty of plain bodies pass, and plenty of tricks are turned away, for each reason.
        Assert.InRange(outcomes.GetValueOrDefault("accepted"), 40, bodies.Count - 40);
        Assert.All(["duplicate_field", "ambiguous_field", "max_tokens_too_large", "model_not_allowed"], reason => Assert.True(outcomes.ContainsKey(reason), reason));
    }

    /// <summary>
    /// Why a generated body was refused, from its status and error (OpenAI's carries a code; Ollama's is a message
    /// only): one of the legitimate reasons a body of <see cref="Bodies"/> can be turned away, else "unexpected …".
    /// </summary>
    private static string RefusalReason(Probe probe, int status, string answer)
    {
        JsonElement error;
        try
        {
            using var document = JsonDocument.Parse(answer);
            error = document.RootElement.GetProperty("error").Clone();
        }
        catch (Exception exception) when (exception is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return $"unexpected {status} '{answer}'";
        }

        if (probe.Ollama)
        {
            string message = error.GetString() ?? "";
            return (status, message) switch
            {
                (400, _) when message.Contains("appears more than once", StringComparison.Ordinal) => "duplicate_field",
                (400, _) when message.Contains("must be spelled", StringComparison.Ordinal) => "ambiguous_field",
                (400, _) when message.Contains("output tokens;", StringComparison.Ordinal) => "max_tokens_too_large",
                (403, _) when message.Contains("may not use model", StringComparison.Ordinal) => "model_not_allowed",
                // Only a name that is not the model's by any reading (mode\u0141) stood for it.
                (400, "'model' is required.") => "model_missing",
                _ => $"unexpected {status} '{answer}'",
            };
        }

        string? code = error.TryGetProperty("code", out var c) ? c.GetString() : null;
        string? param = error.TryGetProperty("param", out var p) ? p.GetString() : null;
        return (status, code) switch
        {
            (400, "duplicate_field" or "ambiguous_field" or "max_tokens_too_large") => code!,
            (403, "model_not_allowed") => code!,
            // A length of -1 in a field OpenAI's API reads: not a whole number from 1.
            (400, null) when param is "max_tokens" or "max_completion_tokens" => "invalid_length",
            (400, null) when param is "model" => "model_missing",
            _ => $"unexpected {status} '{answer}'",
        };
    }

    /// <summary>
    /// Where a Go reader of the relayed body disagrees with an exact-name reader on a field the gateway reads, or
    /// reads a model, output length or stream setting other than the gateway checked and answered with.
    /// </summary>
    private static IEnumerable<string> GoReadProblems(Probe probe, JsonElement root, bool gatewayStreamed)
    {
        var fields = new List<string> { "model", "stream" };
        fields.AddRange(probe.Ollama ? ["options"] : ["max_tokens", "max_completion_tokens", "n_predict", "stream_options"]);
        foreach (string field in fields)
        {
            if (Differs(root, field) is { } problem)
            {
                yield return problem;
            }
        }

        if (probe.Ollama && GoStyleJson.Field(root, "options") is { } options && Differs(options, "num_predict") is { } optionProblem)
        {
            yield return $"options.{optionProblem}";
        }

        if (!probe.Ollama && GoStyleJson.Field(root, "stream_options") is { } streamOptions && Differs(streamOptions, "include_usage") is { } usageProblem)
        {
            yield return $"stream_options.{usageProblem}";
        }

        if (GoStyleJson.Field(root, "messages") is { ValueKind: JsonValueKind.Array } messages)
        {
            foreach (var message in messages.EnumerateArray())
            {
                foreach (string field in new[] { "role", "content" })
                {
                    if (Differs(message, field) is { } messageProblem)
                    {
                        yield return $"messages[].{messageProblem}";
                    }
                }

                if (GoStyleJson.Field(message, "content")?.GetString() != probe.Marker)
                {
                    yield return $"Go reads content {GoStyleJson.Field(message, "content")}, not the prompt the gateway estimated";
                }
            }
        }

        string? model = GoStyleJson.Field(root, "model")?.GetString();
        if (model != (probe.Ollama ? Small : SmallOnOpenAI))
        {
            yield return $"Go reads model {model}";
        }

        string[][] lengths = probe.Ollama ? [["options", "num_predict"]] : [["max_tokens"], ["max_completion_tokens"], ["n_predict"]];
        foreach (var path in lengths)
        {
            var length = GoStyleJson.Field(root, path);
            bool required = path[^1] is "max_tokens" or "num_predict";
            if ((length is null && required) || (length is { } value && (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long tokens) || tokens is < 1 or > Cap)))
            {
                yield return $"Go reads {string.Join('.', path)} {length?.GetRawText() ?? "absent"}";
            }
        }

        bool goStreams = GoStyleJson.Field(root, "stream") is { ValueKind: JsonValueKind.True } || (probe.Ollama && GoStyleJson.Field(root, "stream") is null);
        if (goStreams != gatewayStreamed)
        {
            yield return $"Go reads stream {goStreams}; the gateway streamed {gatewayStreamed}";
        }
    }

    /// <summary>Go's value of the field (folded names, last wins) against an exact-name reader's; null when they agree.</summary>
    private static string? Differs(JsonElement obj, string field)
    {
        string? go = GoStyleJson.Field(obj, field)?.GetRawText();
        string? exact = obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(field, out var value) ? value.GetRawText() : null;
        return go == exact ? null : $"{field}: Go reads {go ?? "nothing"}, an exact reader {exact ?? "nothing"}";
    }

    private sealed record Probe(string Path, string Body, string Marker, bool Ollama);

    private static readonly string[] ModelKeys = ["model", "Model", "MODEL", "mode\u0141", "\\u006dodel", "m\\u006fdel", "Mod\\u0065l"];
    private static readonly string[] StreamKeys = ["stream", "Stream", "ſtream", "\\u017ftream", "STREAM"];
    private static readonly string[] OptionsKeys = ["options", "Options", "opt\u0131ons", "OPTIONS"];
    private static readonly string[] NumPredictKeys = ["num_predict", "Num_Predict", "num_pred\u0131ct", "NUM_PREDICT", "num\\u005fpredict"];
    private static readonly string[] MaxTokensKeys = ["max_tokens", "Max_Tokens", "max_tokenſ", "max_to\u212Aens", "MAX_TOKENS", "max\\u005ftokens"];
    private static readonly string[] MaxCompletionTokensKeys = ["max_completion_tokens", "Max_Completion_Tokens", "max_completion_tokenſ", "MAX_COMPLETION_TOKENS"];
    private static readonly string[] NPredictKeys = ["n_predict", "N_Predict", "n_pred\u0131ct", "N_PREDICT", "n\\u005fpredict"];
    private static readonly string[] StreamOptionsKeys = ["stream_options", "Stream_Options", "ſtream_options", "STREAM_OPTIONS"];
    private static readonly string[] IncludeUsageKeys = ["include_usage", "Include_Usage", "include_uſage", "\\u0069nclude_usage"];
    private static readonly string[] RoleKeys = ["role", "Role", "ROLE"];
    private static readonly string[] ContentKeys = ["content", "Content", "CONTENT", "\\u0063ontent"];

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
            var parts = new List<string> { Text(path, marker, random) };
            for (int i = random.Next(5) == 0 ? 2 : 1; i > 0; i--)
            {
                parts.Add($"\"{Pick(random, ModelKeys)}\":\"{(random.Next(4) == 0 ? big : small)}\"");
            }

            for (int i = Some(random); i > 0; i--)
            {
                parts.Add($"\"{Pick(random, StreamKeys)}\":{(random.Next(2) == 0 ? "true" : "false")}");
            }

            for (int i = Some(random); i > 0; i--)
            {
                string length = Length(random);
                parts.Add(ollama
                    ? $"\"{Pick(random, OptionsKeys)}\":{{\"{Pick(random, NumPredictKeys)}\":{length}{(random.Next(3) == 0 ? $",\"{Pick(random, NumPredictKeys)}\":{Length(random)}" : "")}}}"
                    : $"\"{Pick(random, MaxTokensKeys)}\":{length}");
            }

            if (!ollama)
            {
                foreach (var keys in new[] { MaxCompletionTokensKeys, NPredictKeys })
                {
                    for (int i = Some(random); i > 0; i--)
                    {
                        parts.Add($"\"{Pick(random, keys)}\":{Length(random)}");
                    }
                }

                for (int i = Some(random); i > 0; i--)
                {
                    parts.Add($"\"{Pick(random, StreamOptionsKeys)}\":{{\"{Pick(random, IncludeUsageKeys)}\":{(random.Next(2) == 0 ? "true" : "false")}" +
                        (random.Next(4) == 0 ? $",\"{Pick(random, IncludeUsageKeys)}\":true" : "") + "}");
                }
            }

            random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(parts));
            yield return new Probe(path, "{" + string.Join(',', parts) + "}", marker, ollama);
        }
    }

    /// <summary>None or one, or now and then two (a repeat).</summary>
    private static int Some(Random random) => random.Next(5) == 0 ? 2 : random.Next(2);

    /// <summary>The field's own spelling three times in four, so that enough bodies pass to say something.</summary>
    private static string Pick(Random random, string[] keys) => random.Next(4) == 0 ? keys[random.Next(1, keys.Length)] : keys[0];

    private static string Length(Random random) => random.Next(3) switch
    {
        0 => "100000",
        1 => "-1",
        _ => random.Next(1, Cap + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static bool IsPromptPath(string path) => path is "v1/completions" or "api/generate";

    private static string Text(string path, string marker) => IsPromptPath(path)
        ? $"\"prompt\":\"{marker}\""
        : $"\"messages\":[{{\"role\":\"user\",\"content\":\"{marker}\"}}]";

    /// <summary>The prompt, or one message whose role and content may be repeated or respelled, with a decoy text.</summary>
    private static string Text(string path, string marker, Random random)
    {
        if (IsPromptPath(path))
        {
            return Text(path, marker);
        }

        var parts = new List<string> { "\"role\":\"user\"", $"\"content\":\"{marker}\"" };
        if (random.Next(4) == 0)
        {
            parts.Add($"\"{Pick(random, RoleKeys)}\":\"system\"");
        }

        if (random.Next(4) == 0)
        {
            parts.Add($"\"{Pick(random, ContentKeys)}\":\"a much longer decoy prompt\"");
        }

        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(parts));
        return $"\"messages\":[{{{string.Join(',', parts)}}}]";
    }
}
