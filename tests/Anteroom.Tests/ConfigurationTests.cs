using Anteroom.Configuration;

namespace Anteroom.Tests;

public sealed class ConfigurationTests
{
    [Fact]
    public void Validation_NamesEveryKeyToFix()
    {
        var options = new AnteroomOptions
        {
            Backends =
            [
                new BackendOptions { Name = "a", Url = "not a url", Protocol = "grpc", Slots = 0 },
                new BackendOptions { Name = "a", Url = "http://127.0.0.1:1", Models = ["m"] },
            ],
            Queue = new QueueOptions { Policy = "random", MaxWaitSeconds = 0 },
            Auth = new AuthOptions { MaxSessionsPerAddress = 0 },
            AllowedHosts = ["llm.example.com", "https://llm.example.com", "llm.example.com:8080"],
        };

        var problems = AnteroomOptionsValidator.Problems(options).ToList();

        Assert.Contains(problems, p => p.StartsWith("Anteroom:Backends:0:Url", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Backends:0:Protocol", StringComparison.Ordinal) && p.Contains("'grpc'"));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Backends:0:Slots", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Backends:0:Models", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Backends:1:Name", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Queue:Policy", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Queue:MaxWaitSeconds", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:Auth:MaxSessionsPerAddress", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:AllowedHosts entry 'https://llm.example.com'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Anteroom:AllowedHosts entry 'llm.example.com:8080'", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.StartsWith("Anteroom:AllowedHosts entry 'llm.example.com'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("127.0.0.1:6379,nosuchoption=1", "x", 10, "Anteroom:Redis:Configuration")]
    [InlineData(",", "x", 10, "Anteroom:Redis:Configuration")]
    [InlineData("127.0.0.1:6379", "", 10, "Anteroom:Redis:Prefix")]
    [InlineData("127.0.0.1:6379", "two words", 10, "Anteroom:Redis:Prefix")]
    [InlineData("127.0.0.1:6379", "x", 1, "Anteroom:Redis:LeaseSeconds")]
    [InlineData(null, "x", double.NaN, "Anteroom:Redis:LeaseSeconds")]
    public void Validation_NamesTheRedisSettingToFix(string? configuration, string prefix, double leaseSeconds, string key)
    {
        var options = new AnteroomOptions { Redis = new RedisOptions { Configuration = configuration, Prefix = prefix, LeaseSeconds = leaseSeconds } };

        var problem = Assert.Single(AnteroomOptionsValidator.Problems(options));

        Assert.StartsWith(key + " ", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_AcceptsAGoodConfiguration()
    {
        var options = new AnteroomOptions
        {
            Backends = [new BackendOptions { Name = "gpu-a", Url = "http://127.0.0.1:11434", Protocol = "openai", Slots = 4, Models = ["llama3.1:8b"] }],
            AllowedHosts = ["*", "llm.example.com", "*.example.com"],
            Redis = new RedisOptions { Configuration = "redis.internal:6380,password=from-the-environment,ssl=true", Prefix = "team-a:llm", LeaseSeconds = 5 },
        };

        Assert.Empty(AnteroomOptionsValidator.Problems(options));
    }

    [Theory]
    [InlineData("Host=db;Colour=blue", "Anteroom:Storage:Postgres is not a valid PostgreSQL connection string")]
    [InlineData("Database=anteroom;Username=anteroom", "Anteroom:Storage:Postgres must name the server")]
    public void Validation_RefusesAPostgresSettingThatIsNoConnectionString(string connectionString, string problem)
    {
        var options = new AnteroomOptions { Storage = new StorageOptions { Postgres = connectionString } };

        Assert.Contains(AnteroomOptionsValidator.Problems(options), p => p.StartsWith(problem, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Validation_RefusesConversationRetainDaysBelowOne(int days)
    {
        var options = new AnteroomOptions { Conversations = new ConversationOptions { RetainDays = days } };

        Assert.Contains(AnteroomOptionsValidator.Problems(options), p => p.StartsWith("Anteroom:Conversations:RetainDays must be at least 1", StringComparison.Ordinal));
    }

    [Fact]
    public void Validation_AcceptsSharedStorageAndConversationRetention_AndLeavesBothOffWhenUnset()
    {
        var shared = new AnteroomOptions
        {
            Storage = new StorageOptions { Postgres = "Host=127.0.0.1;Port=5432;Database=anteroom;Username=anteroom;Password=secret" },
            Conversations = new ConversationOptions { RetainDays = 30 },
        };

        Assert.Empty(AnteroomOptionsValidator.Problems(shared));
        Assert.Empty(AnteroomOptionsValidator.Problems(new AnteroomOptions { Storage = new StorageOptions { Postgres = "" } }));
        Assert.Null(new AnteroomOptions().Storage.Postgres);
        Assert.Null(new AnteroomOptions().Conversations.RetainDays);
    }
}
