using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Anteroom.Tests.DropIn;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Access;

/// <summary>A tier's models, output length, requests and tokens per minute, and queue limits hold on every API.</summary>
public sealed class TierLimitTests
{
    private static Dictionary<string, string?> Tier(string name, params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?>();
        foreach (var (key, value) in settings)
        {
            all[$"Anteroom:Tiers:{name}:{key}"] = value;
        }

        return all;
    }

    [Fact]
    public async Task ModelAllowList_HoldsOnEveryApi_AndModelListsShowOnlyAllowedModels()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("small", ("Models:0", OnOllamaBackend)));
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "small"));

        var (native, openAI, ollama) = await EachApiAsync(client, OnOpenAIBackend, ct);
        using var allowed = await client.PostAsJsonAsync("chat", new { model = OnOllamaBackend, message = "hi" }, ct);
        using var embedding = await client.PostAsJsonAsync("v1/embeddings", new { model = OnOpenAIBackend, input = "hi" }, ct);
        using var openAIModels = JsonDocument.Parse(await client.GetStringAsync("v1/models", ct));
        using var ollamaTags = JsonDocument.Parse(await client.GetStringAsync("api/tags", ct));
        using var nativeModels = JsonDocument.Parse(await client.GetStringAsync("models", ct));

        Assert.Equal(HttpStatusCode.Forbidden, native.StatusCode);
        Assert.Equal("model_not_allowed", await ErrorCodeAsync(native, ct));
        Assert.Equal(HttpStatusCode.Forbidden, openAI.StatusCode);
        Assert.Equal("model_not_allowed", await ErrorCodeAsync(openAI, ct));
        Assert.Equal(HttpStatusCode.Forbidden, ollama.StatusCode);
        Assert.Contains("may not use model", (await ErrorAsync(ollama, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, embedding.StatusCode);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal([OnOllamaBackend], openAIModels.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.Equal([OnOllamaBackend], ollamaTags.RootElement.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()));
        Assert.Equal([OnOllamaBackend], nativeModels.RootElement.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(1, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Theory]
    [InlineData(OnOllamaBackend)]
    [InlineData(OnOpenAIBackend)]
    public async Task MaxOutputTokens_RefusesLongerAsks_AndCapsRequestsThatSetNone_OnEveryApi(string model)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("small", ("MaxOutputTokens", "5")), simulator: s => s.OutputTokens = 40);
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "small"));
        var messages = new[] { new { role = "user", content = "hi" } };

        using var nativeOver = await client.PostAsJsonAsync("chat", new { model, message = "hi", max_tokens = 6 }, ct);
        using var openAIOver = await client.PostAsJsonAsync("v1/chat/completions", new { model, messages, max_completion_tokens = 6 }, ct);
        using var ollamaOver = await client.PostAsJsonAsync("api/chat", new { model, messages, stream = false, options = new { num_predict = 6 } }, ct);
        var (native, openAI, ollama) = await EachApiAsync(client, model, ct);
        using var completion = await client.PostAsJsonAsync("v1/completions", new { model, prompt = "hi" }, ct);
        using var generate = await client.PostAsJsonAsync("api/generate", new { model, prompt = "hi", stream = false }, ct);

        Assert.Equal("max_tokens", (await ErrorAsync(nativeOver, ct)).GetProperty("field").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, openAIOver.StatusCode);
        Assert.Equal("max_tokens_too_large", await ErrorCodeAsync(openAIOver, ct));
        Assert.Equal(HttpStatusCode.BadRequest, ollamaOver.StatusCode);
        Assert.Contains("at most 5", (await ErrorAsync(ollamaOver, ct)).GetString(), StringComparison.Ordinal);
        Assert.Equal(5, await JsonIntAsync(native, ct, "usage", "completion_tokens"));
        Assert.Equal(5, await JsonIntAsync(openAI, ct, "usage", "completion_tokens"));
        Assert.Equal(5, await JsonIntAsync(ollama, ct, "eval_count"));
        Assert.Equal(5, await JsonIntAsync(completion, ct, "usage", "completion_tokens"));
        Assert.Equal(5, await JsonIntAsync(generate, ct, "eval_count"));
    }

    [Fact]
    public async Task RequestsPerMinute_RefusesAtOnceWithAnHonestRetryAfter_AndOpenAIRateHeaders()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("trial", ("RequestsPerMinute", "2"), ("TokensPerMinute", "100000")));
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "trial"));
        var other = gateway.KeyClient(await gateway.CreateKeyAsync("bob", tier: "trial"));
        var body = ChatBody(OnOllamaBackend);

        using var first = await client.PostAsJsonAsync("v1/chat/completions", body, ct);
        using var second = await client.PostAsJsonAsync("api/chat", new { model = OnOllamaBackend, stream = false, messages = new[] { new { role = "user", content = "hi" } } }, ct);
        using var third = await client.PostAsJsonAsync("v1/chat/completions", body, ct);
        using var fourth = await client.PostAsJsonAsync("chat", new { message = "hi" }, ct);
        using var bobFirst = await other.PostAsJsonAsync("v1/chat/completions", body, ct);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("2", Header(first, "x-ratelimit-limit-requests"));
        Assert.Equal("1", Header(first, "x-ratelimit-remaining-requests"));
        Assert.Equal("100000", Header(first, "x-ratelimit-limit-tokens"));
        Assert.NotNull(Header(first, "x-ratelimit-reset-tokens"));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.Equal("requests_per_minute_limit", await ErrorCodeAsync(third, ct));
        Assert.Equal("0", Header(third, "x-ratelimit-remaining-requests"));
        // Two requests a minute refill one every 30 s: the first slot frees about 30 s after the first request.
        var retry = third.Headers.RetryAfter?.Delta;
        Assert.True(retry > TimeSpan.FromSeconds(20) && retry <= TimeSpan.FromSeconds(30), $"Retry-After {retry}");
        Assert.Equal(HttpStatusCode.TooManyRequests, fourth.StatusCode);
        Assert.Equal("requests_per_minute_limit", await ErrorCodeAsync(fourth, ct));
        Assert.Equal(HttpStatusCode.OK, bobFirst.StatusCode);
        Assert.Equal(3, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task TokensPerMinute_ChargesWhatWasUsed_AndRefusesWhenTheNextRequestCannotFit()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("trial", ("TokensPerMinute", "80")), simulator: s => s.OutputTokens = 60);
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "trial"));

        using var first = await client.PostAsJsonAsync("chat", new { model = OnOllamaBackend, message = "hi", max_tokens = 60 }, ct);
        int used = await JsonIntAsync(first, ct, "usage", "total_tokens");
        using var second = await client.PostAsJsonAsync("chat", new { model = OnOllamaBackend, message = "hi", max_tokens = 60 }, ct);
        using var small = await client.PostAsJsonAsync("v1/chat/completions", new { model = OnOllamaBackend, max_tokens = 5, messages = new[] { new { role = "user", content = "hi" } } }, ct);

        // The second asks for the prompt plus 60 tokens; after the first's actual use, fewer than that are left.
        Assert.InRange(used, 16, 70);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("tokens_per_minute_limit", await ErrorCodeAsync(second, ct));
        Assert.True(second.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        // What is left after the first request's actual use still fits a short one.
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        int remaining = int.Parse(Header(small, "x-ratelimit-remaining-tokens")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(remaining, 0, 80 - used);
    }

    [Fact]
    public async Task TokensPerMinute_GivesBackTheReservationOfARequestThatNeverRan()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("trial", ("TokensPerMinute", "200")));
        var client = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "trial"));
        string longMessage = new('x', 600);
        gateway.Simulator(OllamaBackend).Hold();
        using var running = await DropInHttp.OllamaStreamAsync(client, OnOllamaBackend, ct);

        // About 150 prompt tokens wait behind the held request, then leave without ever reaching a backend.
        using var queued = await DropInHttp.OpenStreamAsync(client, "chat/stream", new { model = OnOllamaBackend, message = longMessage, max_tokens = 1 }, ct);
        using var cancel = await client.DeleteAsync($"queue/requests/{queued.Headers.GetValues("X-Request-Id").Single()}", ct);
        await gateway.WaitForSchedulerAsync(s => s.Cancelled == 1, ct);
        using var second = new HttpRequestMessage(HttpMethod.Post, "chat/stream") { Content = JsonContent.Create(new { model = OnOllamaBackend, message = longMessage, max_tokens = 1 }) };
        using var again = await client.SendAsync(second, HttpCompletionOption.ResponseHeadersRead, ct);

        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        // Charged for the cancelled one's prompt, the budget would be short of this second, equal request.
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        gateway.Simulator(OllamaBackend).Release();
    }

    [Fact]
    public async Task TierQueueLimits_AndWeight_ApplyPerUserOfTheTier()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(Tier("trial", ("MaxWaiting", "1"), ("MaxInFlight", "3"), ("Weight", "4")));
        var trial = gateway.KeyClient(await gateway.CreateKeyAsync("alice", tier: "trial"));
        var standard = gateway.KeyClient(await gateway.CreateKeyAsync("bob"));
        gateway.Simulator(OllamaBackend).Hold();

        using var running = await DropInHttp.OllamaStreamAsync(trial, OnOllamaBackend, ct);
        using var waiting = await DropInHttp.OllamaStreamAsync(trial, OnOllamaBackend, ct);
        using var refused = await trial.PostAsJsonAsync("chat", new { model = OnOllamaBackend, message = "hi" }, ct);
        using var bob1 = await DropInHttp.OllamaStreamAsync(standard, OnOllamaBackend, ct);
        using var bob2 = await DropInHttp.OllamaStreamAsync(standard, OnOllamaBackend, ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("user_queue_full", await ErrorCodeAsync(refused, ct));
        Assert.Equal(HttpStatusCode.OK, bob2.StatusCode);
        var weights = (await gateway.Queue.GetWaitingAsync()).ToDictionary(w => w.Id, w => (w.Owner, w.Weight));
        Assert.Contains(weights.Values, w => w == ("user:alice", 4.0));
        Assert.Contains(weights.Values, w => w == ("user:bob", 1.0));
        gateway.Simulator(OllamaBackend).Release();
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.Single() : null;

    private static async Task<int> JsonIntAsync(HttpResponseMessage response, CancellationToken cancellationToken, params string[] path)
    {
        string text = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, text);
        using var body = JsonDocument.Parse(text);
        var element = body.RootElement;
        foreach (var name in path)
        {
            element = element.GetProperty(name);
        }

        return element.GetInt32();
    }
}
