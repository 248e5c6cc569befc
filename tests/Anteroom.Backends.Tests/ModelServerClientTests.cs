namespace Anteroom.Backends.Tests;

public sealed class ModelServerClientTests
{
    private static readonly Uri Backend = new("http://gpu-1.test:11434");

    [Fact]
    public void Create_RelativeBaseAddress_Throws()
    {
        using var http = new HttpClient();

        Assert.Throws<ArgumentException>(() => ModelServerClient.Create(BackendProtocol.Ollama, http, new Uri("/api", UriKind.Relative)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Create_NonPositiveIdleTimeout_Throws(int seconds)
    {
        using var http = new HttpClient();
        var options = new ModelServerClientOptions { IdleTimeout = TimeSpan.FromSeconds(seconds) };

        Assert.Throws<ArgumentOutOfRangeException>(() => ModelServerClient.Create(BackendProtocol.Ollama, http, Backend, options));
    }

    [Fact]
    public void Create_InfiniteIdleTimeout_IsAllowed()
    {
        using var http = new HttpClient();
        var options = new ModelServerClientOptions { IdleTimeout = Timeout.InfiniteTimeSpan };

        Assert.Equal(BackendProtocol.OpenAI, ModelServerClient.Create(BackendProtocol.OpenAI, http, Backend, options).Protocol);
    }

    [Fact]
    public void Create_UnknownProtocol_Throws()
    {
        using var http = new HttpClient();

        Assert.Throws<ArgumentOutOfRangeException>(() => ModelServerClient.Create((BackendProtocol)42, http, Backend));
    }
}
