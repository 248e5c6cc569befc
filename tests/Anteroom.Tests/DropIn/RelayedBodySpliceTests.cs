using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Anteroom.Requests;
using static Anteroom.Tests.DropIn.DropInGateway;
using static Anteroom.Tests.DropIn.FieldSpellingTests;

namespace Anteroom.Tests.DropIn;

/// <summary>
/// A relayed body reaches its backend as the client wrote it, but for its output-length fields, which are held to
/// the cap where they stand (or added): not a re-serialization, which would rewrite non-ASCII text, escapes and numbers.
/// </summary>
public sealed class RelayedBodySpliceTests
{
    [Theory]
    // OpenAI: max_tokens added when absent, first, whatever the object holds.
    [InlineData("openai", """{"model":"m"}""", """{"max_tokens":5,"model":"m"}""")]
    [InlineData("openai", """{}""", """{"max_tokens":5}""")]
    [InlineData("openai", """{"model":"m","messages":[{"role":"user","content":"日本語の文 🎉 naïve \u00e9 \"q\""}]}""",
        """{"max_tokens":5,"model":"m","messages":[{"role":"user","content":"日本語の文 🎉 naïve \u00e9 \"q\""}]}""")]
    // Each length field present held in place, spacing and neighbours untouched.
    [InlineData("openai", """{ "model" : "m" , "max_tokens" : 100000 , "stream" : false }""", """{ "model" : "m" , "max_tokens" : 5 , "stream" : false }""")]
    [InlineData("openai", """{"max_completion_tokens":3,"max_tokens":100000,"n_predict":-1}""", """{"max_completion_tokens":3,"max_tokens":5,"n_predict":5}""")]
    [InlineData("openai", """{"max_tokens":0,"n_predict":{"a":[1,{"b":2}]},"max_completion_tokens":"7"}""", """{"max_tokens":5,"n_predict":5,"max_completion_tokens":5}""")]
    [InlineData("openai", """{"max_tokens":2.0,"n_predict":null,"max_completion_tokens":1e1}""", """{"max_tokens":5,"n_predict":5,"max_completion_tokens":5}""")]
    // Names written with escapes are the same fields to every reader, and stay written as they were.
    [InlineData("openai", """{"max\u005ftokens":null,"n\u005Fpredict":-1,"model":"m"}""", """{"max\u005ftokens":5,"n\u005Fpredict":5,"model":"m"}""")]
    // The same names deeper down are the client's data, not length fields.
    [InlineData("openai", """{"metadata":{"max_tokens":100000},"messages":[{"n_predict":-1}]}""", """{"max_tokens":5,"metadata":{"max_tokens":100000},"messages":[{"n_predict":-1}]}""")]
    // Ollama: options.num_predict added, held, or options itself added.
    [InlineData("ollama", """{"model":"m"}""", """{"options":{"num_predict":5},"model":"m"}""")]
    [InlineData("ollama", """{"model":"m","options":{}}""", """{"model":"m","options":{"num_predict":5}}""")]
    [InlineData("ollama", """{"model":"m","options":null}""", """{"model":"m","options":{"num_predict":5}}""")]
    [InlineData("ollama", """{"model":"m","options":{"temperature":0.2}}""", """{"model":"m","options":{"num_predict":5,"temperature":0.2}}""")]
    [InlineData("ollama", """{"model":"m","options":{"num_predict":-1,"temperature":0.2},"stream":false}""", """{"model":"m","options":{"num_predict":5,"temperature":0.2},"stream":false}""")]
    [InlineData("ollama", """{"model":"m","options":{"num_predict":-2}}""", """{"model":"m","options":{"num_predict":5}}""")]
    [InlineData("ollama", """{"opt\u0069ons":{"num\u005fpredict":100000}}""", """{"opt\u0069ons":{"num\u005fpredict":5}}""")]
    [InlineData("ollama", """{"max_tokens":100000,"format":{"options":{"num_predict":-1}},"options":{"n":1}}""",
        """{"max_tokens":100000,"format":{"options":{"num_predict":-1}},"options":{"num_predict":5,"n":1}}""")]
    public void LengthFields_AreHeldToTheCapInPlace_AndEveryOtherByteStays(string protocol, string body, string expected)
    {
        byte[] original = Encoding.UTF8.GetBytes(body);

        byte[] held = OutputLimit.WithMaxTokens(original, Protocol(protocol), 5);

        Assert.Equal(expected, Encoding.UTF8.GetString(held));
        // Apart from the length fields, the result is the same document the client sent.
        Assert.True(JsonNode.DeepEquals(WithoutLengthFields(original, protocol), WithoutLengthFields(held, protocol)));
    }

    [Theory]
    [InlineData("openai", """{"model":"m","max_tokens":5,"max_completion_tokens":1,"n_predict":3,"messages":[{"content":"日本 🎉"}]}""")]
    [InlineData("openai", """{"max\u005ftokens":4}""")]
    [InlineData("ollama", """{"model":"m","options":{"num_predict":5},"prompt":"日本 🎉"}""")]
    public void ABodyAlreadyHeld_IsRelayedAsTheSameArray(string protocol, string body)
    {
        byte[] original = Encoding.UTF8.GetBytes(body);

        Assert.Same(original, OutputLimit.WithMaxTokens(original, Protocol(protocol), 5));
    }

    /// <summary>
    /// Over HTTP, through the gateway to the simulator: the body each backend receives is the client's, byte for
    /// byte (CJK, emoji and escapes included), but for the length fields held to the tier's cap.
    /// </summary>
    [Fact]
    public async Task RelayedBodies_ReachTheBackendByteForByte_ButForTheirLengthFieldsHeldToTheTiersCap()
    {
        var ct = Within30Seconds();
        var (gateway, client) = await StartAsync();
        await using var _ = gateway;
        string Chat(string marker) => $$"""[{"role":"user","content":"日本語の文 🎉 naïve \u00e9 {{marker}}"}]""";
        var cases = new (string Path, string Body, string Expected)[]
        {
            ("v1/chat/completions",
                $$"""{"model":"{{SmallOnOpenAI}}","messages":{{Chat("m1")}},"max_tokens":4,"stream":false}""",
                $$"""{"model":"{{SmallOnOpenAI}}","messages":{{Chat("m1")}},"max_tokens":4,"stream":false}"""),
            ("v1/chat/completions",
                $$"""{"model":"{{SmallOnOpenAI}}","messages":{{Chat("m2")}}}""",
                $$"""{"max_tokens":{{Cap}},"model":"{{SmallOnOpenAI}}","messages":{{Chat("m2")}}}"""),
            ("v1/completions",
                $$"""{"model":"{{SmallOnOpenAI}}","prompt":"𝄞 m3","max\u005ftokens":null, "n\u005fpredict":-1}""",
                $$"""{"model":"{{SmallOnOpenAI}}","prompt":"𝄞 m3","max\u005ftokens":{{Cap}}, "n\u005fpredict":{{Cap}}}"""),
            ("api/chat",
                $$$"""{"model":"{{{Small}}}","messages":{{{Chat("m4")}}},"stream":false,"options":{"num_predict":-1,"temperature":0.5}}""",
                $$$"""{"model":"{{{Small}}}","messages":{{{Chat("m4")}}},"stream":false,"options":{"num_predict":{{{Cap}}},"temperature":0.5}}"""),
            ("api/generate",
                $$"""{"model":"{{Small}}","prompt":"ünïcödé 🎉 m5","stream":false}""",
                $$"""{"options":{"num_predict":{{Cap}}},"model":"{{Small}}","prompt":"ünïcödé 🎉 m5","stream":false}"""),
        };

        for (int i = 0; i < cases.Length; i++)
        {
            var (path, body, expected) = cases[i];
            string marker = $"m{i + 1}";
            using var response = await client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), ct);

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var backend = path.StartsWith("api/", StringComparison.Ordinal) ? OllamaBackend : OpenAIBackend;
            var received = Assert.Single(gateway.Simulator(backend).ReceivedBodies, b => b.Path.EndsWith(path, StringComparison.Ordinal)
                && Encoding.UTF8.GetString(b.Body).Contains(marker, StringComparison.Ordinal));
            Assert.Equal(Encoding.UTF8.GetBytes(expected), received.Body);
        }
    }

    private static ClientProtocol Protocol(string name) => name == "ollama" ? ClientProtocol.Ollama : ClientProtocol.OpenAI;

    private static JsonObject WithoutLengthFields(byte[] body, string protocol)
    {
        var root = JsonNode.Parse(body)!.AsObject();
        if (protocol == "ollama")
        {
            if (root["options"] is JsonObject options)
            {
                options.Remove("num_predict");
            }

            // An options of null, or none, held becomes an options holding only the length.
            if (root["options"] is null or JsonObject { Count: 0 })
            {
                root.Remove("options");
            }
        }
        else
        {
            root.Remove("max_tokens");
            root.Remove("max_completion_tokens");
            root.Remove("n_predict");
        }

        return root;
    }
}
