using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anteroom.Backends.Http;
using Anteroom.Backends.Ollama;
using Anteroom.Backends.OpenAI;

namespace Anteroom.Backends.Tests.Http;

/// <summary>
/// The relay's token path tells ordinary token chunks by their bytes (<see cref="TokenChunkScan"/>) and reads only
/// the others as JSON. Whatever a model writes, and whichever way a server escapes it, the verdicts must be what
/// reading every chunk as JSON gives.
/// </summary>
public sealed class TokenChunkScanTests
{
    // Texts a model might write, including ones that look like the names the scan searches for.
    private static readonly string[] Texts =
    [
        "", "Hello", " world", "\"", "\\", "\\\"", "\"content\":\"", "\"finish_reason\":null", "\"error\"", "\"usage\":{",
        "\"done\":false", "\"response\":\"x", "}\n\ndata: [DONE]\n\n", "ſK", "日本語", "🙂", "a\"b\\c", "\u0000\u001f",
    ];

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions Strict = new();

    [Fact]
    public void ServersOrdinaryChunks_AreToldByTheirBytes()
    {
        Assert.True(OpenAIRelayFraming.IsPlainToken("""{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}"""u8));
        Assert.True(OpenAIRelayFraming.IsPlainToken("""{"id":"c","choices":[{"text":" there","index":0,"logprobs":null,"finish_reason":null}],"usage":null}"""u8));
        Assert.True(OllamaRelayFraming.IsPlainToken("""{"model":"m","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false}"""u8));
        Assert.True(OllamaRelayFraming.IsPlainToken("""{"model":"m","created_at":"2026-01-01T00:00:00Z","response":"Hi","done":false}"""u8));

        // The first chunk (a role and no text), the last (a finish reason), usage and errors are read as JSON.
        Assert.False(OpenAIRelayFraming.IsPlainToken("""{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"""u8));
        Assert.False(OpenAIRelayFraming.IsPlainToken("""{"choices":[{"index":0,"delta":{"content":"."},"finish_reason":"stop"}]}"""u8));
        Assert.False(OpenAIRelayFraming.IsPlainToken("""{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"""u8));
        Assert.False(OpenAIRelayFraming.IsPlainToken("""{"error":{"message":"x"},"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"""u8));
        Assert.False(OllamaRelayFraming.IsPlainToken("""{"model":"m","message":{"role":"assistant","content":""},"done":true,"eval_count":3}"""u8));
        Assert.False(OllamaRelayFraming.IsPlainToken("""{"error":"out of memory","message":{"content":"x"},"done":false}"""u8));
    }

    [Fact]
    public void OpenAIStreams_GetTheVerdictsOfReadingEveryChunk()
    {
        var random = new Random(20261203);
        for (int stream = 0; stream < 2_000; stream++)
        {
            var framing = new OpenAIRelayFraming();
            var options = random.Next(2) == 0 ? Relaxed : Strict;
            GenerationUsage? usage = null;
            string? finish = null;
            int chunks = random.Next(1, 8);
            for (int i = 0; i < chunks; i++)
            {
                bool chat = random.Next(2) == 0;
                string text = Pick(random);
                string? reason = random.Next(5) == 0 ? "stop" : null;
                var choice = new JsonObject { ["index"] = 0 };
                if (chat)
                {
                    var delta = new JsonObject();
                    if (random.Next(4) == 0)
                    {
                        delta["role"] = "assistant";
                    }

                    delta["content"] = text;
                    choice["delta"] = delta;
                }
                else
                {
                    choice["text"] = text;
                }

                choice["logprobs"] = null;
                choice["finish_reason"] = reason;
                var chunk = new JsonObject { ["id"] = "c" + Pick(random), ["choices"] = new JsonArray(choice) };
                GenerationUsage? chunkUsage = null;
                switch (random.Next(4))
                {
                    case 0:
                        chunk["usage"] = null;
                        break;
                    case 1:
                        chunkUsage = new GenerationUsage(random.Next(100), random.Next(100));
                        chunk["usage"] = new JsonObject { ["prompt_tokens"] = chunkUsage.PromptTokens, ["completion_tokens"] = chunkUsage.CompletionTokens };
                        break;
                }

                bool error = random.Next(12) == 0;
                if (error)
                {
                    chunk["error"] = new JsonObject { ["message"] = "failed: " + Pick(random) };
                }

                var verdict = framing.Inspect(Encoding.UTF8.GetBytes("data: " + chunk.ToJsonString(options) + "\n\n"));
                if (error)
                {
                    Assert.Equal(FrameKind.Error, verdict.Kind);
                    break;
                }

                Assert.Equal(FrameVerdict.Data(text.Length > 0 ? 1 : 0), verdict);
                usage = chunkUsage ?? usage;
                finish = reason ?? finish;
                if (i == chunks - 1)
                {
                    Assert.Equal(FrameVerdict.End(0, usage, finish), framing.Inspect("data: [DONE]\n\n"u8));
                }
            }
        }
    }

    [Fact]
    public void OllamaStreams_GetTheVerdictsOfReadingEveryLine()
    {
        var random = new Random(12032026);
        for (int line = 0; line < 5_000; line++)
        {
            var options = random.Next(2) == 0 ? Relaxed : Strict;
            bool chat = random.Next(2) == 0;
            bool done = random.Next(4) == 0;
            bool error = random.Next(12) == 0;
            string text = Pick(random);
            var json = new JsonObject { ["model"] = "m" + Pick(random), ["created_at"] = "2026-12-03T00:00:00Z" };
            if (chat)
            {
                json["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text };
            }
            else
            {
                json["response"] = text;
            }

            json["done"] = done;
            if (done)
            {
                json["done_reason"] = "stop";
                json["prompt_eval_count"] = 4;
                json["eval_count"] = 9;
            }

            if (error)
            {
                json["error"] = Pick(random) + "!";
            }

            var verdict = new OllamaRelayFraming().Inspect(Encoding.UTF8.GetBytes(json.ToJsonString(options) + "\n"));
            int pieces = text.Length > 0 ? 1 : 0;
            var expected = error ? FrameKind.Error : done ? FrameKind.End : FrameKind.Data;
            Assert.Equal(expected, verdict.Kind);
            if (!error)
            {
                Assert.Equal(pieces, verdict.ContentPieces);
                Assert.Equal(done ? new GenerationUsage(4, 9) : null, verdict.Usage);
            }
        }
    }

    private static string Pick(Random random) => random.Next(3) == 0
        ? Texts[random.Next(Texts.Length)] + Texts[random.Next(Texts.Length)]
        : Texts[random.Next(Texts.Length)];
}
