using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Anteroom.Requests;
using static Anteroom.Tests.Access.AccessGateway;
using static Anteroom.Tests.DropIn.DropInGateway;

namespace Anteroom.Tests.Access;

/// <summary>A tier's output cap holds in the relayed body whichever length field the backend reads.</summary>
public sealed class RelayedOutputCapTests
{
    [Fact]
    public void OpenAIBody_HasEveryLengthFieldItCarriesHeldToTheCap_AndMaxTokensAlways()
    {
        byte[] body = Encoding.UTF8.GetBytes("""{"model":"m","max_completion_tokens":3,"max_tokens":100000,"n_predict":-1}""");

        using var held = JsonDocument.Parse(OutputLimit.WithMaxTokens(body, ClientProtocol.OpenAI, 5));
        using var bare = JsonDocument.Parse(OutputLimit.WithMaxTokens("""{"model":"m"}"""u8.ToArray(), ClientProtocol.OpenAI, 5));

        Assert.Equal(3, held.RootElement.GetProperty("max_completion_tokens").GetInt32());
        Assert.Equal(5, held.RootElement.GetProperty("max_tokens").GetInt32());
        Assert.Equal(5, held.RootElement.GetProperty("n_predict").GetInt32());
        Assert.Equal("m", held.RootElement.GetProperty("model").GetString());
        Assert.Equal(5, bare.RootElement.GetProperty("max_tokens").GetInt32());
        Assert.False(bare.RootElement.TryGetProperty("n_predict", out _));
    }

    [Theory]
    [InlineData("""{"model":"m"}""", 5)]
    [InlineData("""{"model":"m","options":{"num_predict":-1,"temperature":0.2}}""", 5)]
    [InlineData("""{"model":"m","options":{"num_predict":-2}}""", 5)]
    [InlineData("""{"model":"m","options":{"num_predict":3}}""", 3)]
    public void OllamaBody_HasNumPredictHeldToTheCap(string body, int expected)
    {
        using var held = JsonDocument.Parse(OutputLimit.WithMaxTokens(Encoding.UTF8.GetBytes(body), ClientProtocol.Ollama, 5));

        Assert.Equal(expected, held.RootElement.GetProperty("options").GetProperty("num_predict").GetInt32());
    }

    [Theory]
    [InlineData("v1/completions", "n")]
    [InlineData("v1/completions", "best_of")]
    [InlineData("v1/chat/completions", "n")]
    [InlineData("v1/chat/completions", "best_of")]
    public async Task SeveralGenerationsInOneRequest_AreRefused_NamingTheField(string path, string field)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartWithAccessAsync(keysMode: false);
        var body = new Dictionary<string, object>
        {
            ["model"] = OnOpenAIBackend,
            [path.EndsWith("chat/completions", StringComparison.Ordinal) ? "messages" : "prompt"] = path.EndsWith("chat/completions", StringComparison.Ordinal)
                ? new[] { new { role = "user", content = "hi" } }
                : "hi",
            [field] = 4,
        };

        using var response = await gateway.Client("alice").PostAsJsonAsync(path, body, ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(field, (await ErrorAsync(response, ct)).GetProperty("param").GetString());
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }
}
