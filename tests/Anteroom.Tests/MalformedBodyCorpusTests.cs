using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Anteroom.Tests.DropIn;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests;

/// <summary>
/// A corpus of malformed bodies replayed over every JSON endpoint of every API on one gateway: none gets a 500 or a
/// dropped connection, and every refusal comes in the shape of the API it was sent to.
/// </summary>
public sealed class MalformedBodyCorpusTests
{
    private const int MaxBodyBytes = 4096;

    /// <summary>Every endpoint that reads a JSON body, and the API whose error shape it answers in.</summary>
    private static readonly (HttpMethod Method, string Path, Api Api)[] Endpoints =
    [
        (HttpMethod.Post, "chat", Api.Native),
        (HttpMethod.Post, "chat/stream", Api.Native),
        (HttpMethod.Post, "conversations", Api.Native),
        (HttpMethod.Patch, "conversations/c_corpus", Api.Native),
        (HttpMethod.Post, "session", Api.Native),
        (HttpMethod.Post, "admin/keys", Api.Native),
        (HttpMethod.Post, "v1/chat/completions", Api.OpenAI),
        (HttpMethod.Post, "v1/completions", Api.OpenAI),
        (HttpMethod.Post, "v1/embeddings", Api.OpenAI),
        (HttpMethod.Post, "api/chat", Api.Ollama),
        (HttpMethod.Post, "api/generate", Api.Ollama),
        (HttpMethod.Post, "api/embed", Api.Ollama),
        (HttpMethod.Post, "api/embeddings", Api.Ollama),
        (HttpMethod.Post, "api/show", Api.Ollama),
    ];

    private enum Api
    {
        Native,
        OpenAI,
        Ollama,
    }

    private sealed record Case(string Name, byte[] Body, string? ContentType = "application/json");

    [Fact]
    public async Task EveryMalformedBody_OnEveryJsonEndpoint_GetsNo500AndNoDroppedConnection_AndRefusalsInTheApisOwnShape()
    {
        var ct = new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token;
        await using var gateway = await DropInGateway.StartAsync(
            new Dictionary<string, string?>
            {
                ["Anteroom:Auth:Mode"] = "keys",
                ["Anteroom:MaxRequestBodyBytes"] = MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
                // A cap, so that accepted bodies take the path that rewrites the relayed body's output length.
                ["Anteroom:Tiers:capped:MaxOutputTokens"] = "4",
            },
            simulator: s => s.OutputTokens = 4);
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("root", tier: "capped", admin: true));
        var cases = Corpus().ToList();
        var sends = cases.SelectMany(c => Endpoints.Select(e => (Case: c, Endpoint: e))).ToList();

        var failures = new List<string>();
        int refused = 0;
        await Parallel.ForEachAsync(sends, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (send, token) =>
        {
            var (@case, (method, path, api)) = send;
            using var request = new HttpRequestMessage(method, path) { Content = new ByteArrayContent(@case.Body) };
            if (@case.ContentType is { } type)
            {
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            }

            string? problem;
            try
            {
                using var response = await client.SendAsync(request, token);
                string text = await response.Content.ReadAsStringAsync(token);
                problem = (int)response.StatusCode switch
                {
                    >= 500 => $"{(int)response.StatusCode} '{text}'",
                    >= 400 => ShapeProblem(api, text),
                    _ => null,
                };
                if ((int)response.StatusCode >= 400)
                {
                    Interlocked.Increment(ref refused);
                }
            }
            catch (HttpRequestException exception)
            {
                problem = $"connection dropped: {exception.Message}";
            }

            if (problem is not null)
            {
                lock (failures)
                {
                    failures.Add($"{method} /{path} with {@case.Name}: {problem}");
                }
            }
        });

        Assert.True(failures.Count == 0, $"{failures.Count} of {sends.Count}:\n" + string.Join('\n', failures.Take(40)));
        Assert.True(cases.Count >= 150, $"only {cases.Count} bodies");
        Assert.True(refused > sends.Count / 2, $"only {refused} of {sends.Count} refused: the corpus is not malformed enough");
    }

    [Theory]
    [InlineData("admin/requests?until=0001-01-01T00:00:00Z", "until")]
    [InlineData("admin/usage?until=0001-01-01T00:00:00Z", "until")]
    [InlineData("admin/requests?until=0001-01-01T05:00:00Z&hours=6", "until")]
    [InlineData("admin/requests?since=9999-12-31T23:59:59Z", "since")]
    [InlineData("admin/usage?since=9999-12-31T23:59:59.9999999Z&until=9999-12-31T23:59:59.9999999Z", "since")]
    [InlineData("admin/usage?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.9999999Z", null)]
    public async Task AdminPeriods_AtTheEndsOfTheCalendar_AreAnsweredOrRefusedWith400NamingTheParameter(string path, string? field)
    {
        var ct = Within30Seconds();
        await using var gateway = await DropInGateway.StartAsync(new Dictionary<string, string?> { ["Anteroom:Auth:Mode"] = "keys" });
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));

        using var response = await admin.GetAsync(path, ct);

        if (field is null)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return;
        }

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        Assert.Equal(field, body.RootElement.GetProperty("error").GetProperty("field").GetString());
        Assert.Equal("invalid_request", body.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("chat", "model")]
    [InlineData("conversations", "title")]
    [InlineData("admin/keys", "user")]
    [InlineData("v1/chat/completions", "messages[0].content")]
    [InlineData("v1/embeddings", "input")]
    [InlineData("api/chat", "model")]
    [InlineData("api/show", "name")]
    public async Task ALoneSurrogateOrInvalidUtf8_InAnyString_Gets400NamingTheField(string path, string field)
    {
        var ct = Within30Seconds();
        await using var gateway = await DropInGateway.StartAsync(new Dictionary<string, string?> { ["Anteroom:Auth:Mode"] = "keys" });
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        string model = field == "model" ? "\\ud800" : OnOllamaBackend;
        string content = field == "messages[0].content" ? "\\udc00" : "hi";
        string template = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"{{content}}"}],"message":"hi","prompt":"hi","user":"u","title":"t","input":"i","name":"n"}""";
        byte[] surrogate = Encoding.UTF8.GetBytes(template.Replace($"\"{Last(field)}\":\"{LastValue(template, field)}\"", $"\"{Last(field)}\":\"\\ud800\"", StringComparison.Ordinal));
        byte[] invalid = Encoding.UTF8.GetBytes(template.Replace($"\"{Last(field)}\":\"{LastValue(template, field)}\"", $"\"{Last(field)}\":\"\u0001\"", StringComparison.Ordinal))
            .Select(b => b == 0x01 ? (byte)0xFF : b).ToArray();

        foreach (var body in new[] { surrogate, invalid })
        {
            using var response = await client.PostAsync(path, new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } }, ct);

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var error = answer.RootElement.GetProperty("error");
            string message = error.ValueKind == JsonValueKind.String ? error.GetString()! : error.GetProperty("message").GetString()!;
            Assert.Contains($"'{field}'", message, StringComparison.Ordinal);
        }
    }

    private static string Last(string field) => field.Split('.')[^1];

    private static string LastValue(string template, string field)
    {
        string key = $"\"{Last(field)}\":\"";
        int start = template.IndexOf(key, StringComparison.Ordinal) + key.Length;
        return template[start..template.IndexOf('"', start)];
    }

    private static string? ShapeProblem(Api api, string text)
    {
        try
        {
            using var body = JsonDocument.Parse(text);
            var error = body.RootElement.TryGetProperty("error", out var e) ? e : default;
            bool fits = api switch
            {
                Api.Ollama => error.ValueKind == JsonValueKind.String && error.GetString()!.Length > 0,
                Api.OpenAI => error.ValueKind == JsonValueKind.Object
                    && error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
                    && error.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
                    && error.TryGetProperty("param", out var p) && p.ValueKind is JsonValueKind.String or JsonValueKind.Null
                    && error.TryGetProperty("code", out var c) && c.ValueKind is JsonValueKind.String or JsonValueKind.Null,
                _ => error.ValueKind == JsonValueKind.Object
                    && error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
                    && error.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String,
            };
            return fits ? null : $"not in the {api} error shape: '{text}'";
        }
        catch (JsonException)
        {
            return $"not JSON: '{text}'";
        }
    }

    /// <summary>A body with every field any endpoint needs, so that each mutation is what an endpoint trips on.</summary>
    private static List<(string Key, byte[] Value)> Base(int index) =>
    [
        ("model", Utf8($"\"{(index % 2 == 0 ? OnOllamaBackend : OnOpenAIBackend)}\"")),
        ("messages", Utf8("""[{"role":"user","content":"hi"}]""")),
        ("message", Utf8("\"hi\"")),
        ("prompt", Utf8("\"hi\"")),
        ("input", Utf8("\"hi\"")),
        ("title", Utf8("\"t\"")),
        ("user", Utf8($"\"u{index}\"")),
        ("key", Utf8("\"ant_not_a_key\"")),
        ("stream", Utf8("false")),
    ];

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Join(IEnumerable<(byte[] Key, byte[] Value)> fields)
    {
        var body = new List<byte> { (byte)'{' };
        foreach (var (key, value) in fields)
        {
            if (body.Count > 1)
            {
                body.Add((byte)',');
            }

            body.Add((byte)'"');
            body.AddRange(key);
            body.AddRange("\":"u8.ToArray());
            body.AddRange(value);
        }

        body.Add((byte)'}');
        return [.. body];
    }

    /// <summary>The base body with one field set to a raw value (bytes, so they may be invalid), others kept.</summary>
    private static byte[] With(int index, string key, byte[] value) =>
        Join(Base(index).Where(f => f.Key != key).Select(f => (Utf8(f.Key), f.Value)).Append((Utf8(key), value)));

    /// <summary>The base body with one more field after the others, whatever its name (bytes, so it may repeat one or be invalid).</summary>
    private static byte[] Plus(int index, byte[] key, byte[] value) =>
        Join(Base(index).Select(f => (Utf8(f.Key), f.Value)).Append((key, value)));

    private static IEnumerable<Case> Corpus()
    {
        int i = 0;
        byte[][] badUtf8 = [[0xFF], [0xC0, 0x80], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80]];
        string[] surrogates = ["\\ud800", "\\udc00", "\\ud800x", "\\ud800\\u0041", "\\udfff\\ud800", "x\\uDBFF"];
        string[] stringFields = ["model", "message", "prompt", "input", "title", "user", "key"];

        // Invalid UTF-8 and lone surrogates in values, nested values and names.
        foreach (var bad in badUtf8)
        {
            foreach (string field in stringFields)
            {
                yield return new($"invalid UTF-8 {Convert.ToHexString(bad)} in {field}", With(i++, field, [(byte)'"', .. bad, (byte)'"']));
            }

            yield return new($"invalid UTF-8 {Convert.ToHexString(bad)} in messages[0].content", With(i++, "messages", [.. "[{\"role\":\"user\",\"content\":\""u8, .. bad, .. "\"}]"u8]));
            yield return new($"invalid UTF-8 {Convert.ToHexString(bad)} in a name", Plus(i++, [.. "x"u8, .. bad], Utf8("1")));
            yield return new($"invalid UTF-8 {Convert.ToHexString(bad)} in options", Plus(i++, Utf8("options"), [.. "{\"stop\":\""u8, .. bad, .. "\"}"u8]));
        }

        foreach (string surrogate in surrogates)
        {
            foreach (string field in stringFields)
            {
                yield return new($"lone surrogate {surrogate} in {field}", With(i++, field, Utf8($"\"{surrogate}\"")));
            }

            yield return new($"lone surrogate {surrogate} in messages[0].role", With(i++, "messages", Utf8($"[{{\"role\":\"{surrogate}\",\"content\":\"hi\"}}]")));
            yield return new($"lone surrogate {surrogate} in a name", Plus(i++, Utf8(surrogate), Utf8("1")));
            yield return new($"lone surrogate {surrogate} in a nested name", Plus(i++, Utf8("options"), Utf8($"{{\"{surrogate}\":1}}")));
        }

        // Repeated names, exactly and in another case, at the top and nested.
        foreach (string field in new[] { "model", "messages", "message", "prompt", "input", "title", "user", "key", "stream" })
        {
            yield return new($"{field} twice", Plus(i, Utf8(field), Base(i++).First(f => f.Key == field).Value));
            yield return new($"{field} again upper-cased", Plus(i, Utf8(field.ToUpperInvariant()), Base(i++).First(f => f.Key == field).Value));
            yield return new($"{field} alone capitalized", Join(Base(i++).Select(f => (Utf8(f.Key == field ? char.ToUpperInvariant(f.Key[0]) + f.Key[1..] : f.Key), f.Value))));
        }

        foreach (string fragment in new[]
        {
            "\"options\":{\"num_predict\":1,\"num_predict\":100000}", "\"options\":{\"num_predict\":1},\"Options\":{\"num_predict\":100000}",
            "\"Options\":{\"num_predict\":100000}", "\"options\":{\"Num_Predict\":100000}", "\"options\":{\"num_pred\u0131ct\":100000}",
            "\"max_tokens\":1,\"max_tokens\":100000", "\"Max_Tokens\":100000", "\"max_tokenſ\":100000", "\"max_to\u212Aens\":100000",
            "\"ſtream\":true", "\"STREAM\":true", "\"stream_options\":{\"include_usage\":true,\"Include_Usage\":false}",
            "\"tools\":[{\"a\":1,\"A\":2}]", "\"x\":{\"y\":1,\"y\":2}", "\"\\u006dodel\":\"other\"", "\"admin\":true,\"Admin\":false",
        })
        {
            yield return new($"fragment {fragment}", Plus(i++, Utf8(fragment[1..fragment.IndexOf('"', 1)]), Utf8(fragment[(fragment.IndexOf(':') + 1)..])));
        }

        // Deep nesting, in a field and at the root.
        foreach (int depth in new[] { 62, 63, 64, 65, 200, 1000 })
        {
            yield return new($"arrays {depth} deep", Plus(i++, Utf8("deep"), Utf8(new string('[', depth) + new string(']', depth))));
            yield return new($"objects {depth} deep", Plus(i++, Utf8("deep"), Utf8(string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth))));
        }

        yield return new("root arrays 5000 deep", Utf8(new string('[', 5000) + new string(']', 5000)));

        // Numbers beyond every range, where numbers are read and where they are not.
        foreach (string number in new[] { "1e400", "-1e400", "1e309", "123456789012345678901234567890", "-0", "1.5", "4e0", "0.0000001e-400" })
        {
            foreach (string field in new[] { "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "n", "best_of", "max_wait_ms", "reconnect_grace_ms" })
            {
                yield return new($"{field}: {number}", With(i++, field, Utf8(number)));
            }

            yield return new($"options with {number}", With(i++, "options", Utf8($"{{\"num_predict\":{number},\"temperature\":{number},\"top_p\":{number},\"seed\":{number}}}")));
        }

        // Wrong types and nulls for every field read.
        string[] wrongs = ["null", "1", "-1", "true", "[]", "{}", "\"\"", "[1]", "[null]", "[{\"role\":1}]", "[{}]", "\"x\""];
        foreach (string field in new[] { "model", "messages", "message", "prompt", "input", "title", "user", "key", "stream", "options", "stream_options", "stop", "tier", "expires", "admin", "name", "encoding_format", "conversation_id" })
        {
            foreach (string wrong in wrongs)
            {
                yield return new($"{field}: {wrong}", With(i++, field, Utf8(wrong)));
            }
        }

        // Bodies that are too big, not objects, or not JSON.
        yield return new("body over the limit", With(i++, "message", Utf8($"\"{new string('a', MaxBodyBytes * 2)}\"")));
        yield return new("body over the limit, unknown field", Plus(i++, Utf8("padding"), Utf8($"\"{new string('a', MaxBodyBytes * 4)}\"")));
        yield return new("raw control character", With(i++, "message", [(byte)'"', 0x01, (byte)'"']));
        yield return new("raw tab and newline", With(i++, "model", Utf8("\"a\tb\nc\"")));
        yield return new("escaped NUL", With(i++, "model", Utf8("\"\\u0000\"")));
        yield return new("escaped NUL in a name", Plus(i++, Utf8("\\u0000"), Utf8("1")));
        yield return new("bad escape", With(i++, "model", Utf8("\"\\x41\"")));
        yield return new("short escape", With(i++, "model", Utf8("\"\\u12\"")));
        foreach (string text in new[] { "", " ", "null", "[]", "[{}]", "\"x\"", "1", "true", "{", "}", "{}", "{\"model\":}", "{\"model\":\"a\",}", "{/* c */}", "{}{}", "{} x", "NaN", "{\"temperature\":NaN}", "\uFEFF{}" })
        {
            yield return new($"text '{text}'", Utf8(text));
        }

        byte[] valid = Join(Base(i++).Select(f => (Utf8(f.Key), f.Value)));
        yield return new("no content type", valid, null);
        yield return new("text/plain", valid, "text/plain");
        yield return new("form", Utf8("model=a&message=b"), "application/x-www-form-urlencoded");
        yield return new("multipart", Utf8("--x\r\n\r\nhi\r\n--x--"), "multipart/form-data; boundary=x");
        yield return new("UTF-16", Encoding.Unicode.GetBytes(Encoding.UTF8.GetString(valid)), "application/json; charset=utf-16");
        yield return new("UTF-32 with a BOM", [.. Encoding.UTF32.GetPreamble(), .. Encoding.UTF32.GetBytes("{}")]);
    }
}
