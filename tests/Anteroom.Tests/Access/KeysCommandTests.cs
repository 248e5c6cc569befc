using System.Net;
using System.Text.Json;
using Anteroom.Identity;
using static Anteroom.Tests.ConversationHttp;

namespace Anteroom.Tests.Access;

/// <summary><c>anteroom keys</c>, run in process on a temporary data directory, and a gateway on the same data.</summary>
public sealed class KeysCommandTests : IDisposable
{
    private readonly string _directory = TestGateway.NewDataDirectory();

    private string DataSetting => $"--Anteroom:Data:Directory={_directory}";

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        // The data directory right after the command: no flag before it can take it for its value.
        int exit = await KeysCommand.RunAsync([args[0], DataSetting, .. args[1..]], output, error);
        return (exit, output.ToString(), error.ToString());
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public async Task Create_PrintsExactlyTheToken_OnStandardOutput_AndListShowsItActive()
    {
        var (exit, output, error) = await RunAsync("create", "--user", "alice", "--tier", "default");
        var (listExit, list, _) = await RunAsync("list");

        Assert.Equal(0, exit);
        string token = Assert.Single(Lines(output));
        Assert.Matches("^ant_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$", token);
        string id = token.Substring(4, 16);
        Assert.Contains($"Created key {id} for user 'alice' (tier 'default')", error);
        Assert.DoesNotContain(token, error);
        Assert.Equal(0, listExit);
        string row = Assert.Single(Lines(list), line => line.StartsWith(id, StringComparison.Ordinal));
        Assert.Matches($"^{id}\\s+alice\\s+default\\s+active\\s", row);
        Assert.DoesNotContain(token[21..], list);
    }

    [Fact]
    public async Task Create_WithAdminAndExpiry_IsListedSo()
    {
        var (exit, output, error) = await RunAsync("create", "--user", "ops@example.org", "--expires", "30d", "--admin");
        var (_, list, _) = await RunAsync("list");

        Assert.Equal(0, exit);
        string id = Single(output).Substring(4, 16);
        Assert.Contains(", admin, expires ", error);
        Assert.Matches($"^{id}\\s+ops@example.org\\s+default\\s+active\\s+.*admin$", Assert.Single(Lines(list), l => l.StartsWith(id, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AGatewayOnTheSameData_WithoutAKeyCache_AcceptsTheKey_AndRefusesItAtOnceOnceRevoked()
    {
        var ct = Within30Seconds();
        var (_, output, _) = await RunAsync("create", "--user", "alice", "--tier", "default");
        string token = Single(output);
        string id = token.Substring(4, 16);
        await using var gateway = await TestGateway.StartAsync(
            [new TestBackend("gpu", TestGateway.FastSimulator())],
            new Dictionary<string, string?> { ["Anteroom:Data:Directory"] = _directory, ["Anteroom:Auth:Mode"] = "keys", ["Anteroom:Auth:KeyCacheMilliseconds"] = "0" });
        var withKey = gateway.KeyClient(token);

        using var accepted = await withKey.GetAsync("v1/models", ct);
        string acceptedBody = await accepted.Content.ReadAsStringAsync(ct);
        using var withoutKey = await gateway.Client("alice").GetAsync("v1/models", ct);
        var (revokeExit, revokeOutput, _) = await RunAsync("revoke", id);
        using var afterRevoke = await withKey.GetAsync("v1/models", ct);
        string refusedBody = await afterRevoke.Content.ReadAsStringAsync(ct);
        using var nativeAfterRevoke = await withKey.GetAsync("models", ct);
        var (againExit, _, againError) = await RunAsync("revoke", id);
        var (_, list, _) = await RunAsync("list");

        Assert.True(accepted.StatusCode == HttpStatusCode.OK, acceptedBody);
        Assert.Contains("llama3.1:8b", acceptedBody);
        Assert.Equal(HttpStatusCode.Unauthorized, withoutKey.StatusCode);
        Assert.Equal(0, revokeExit);
        Assert.Contains($"Revoked key {id}", revokeOutput);
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
        using (var body = JsonDocument.Parse(refusedBody))
        {
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(("revoked_api_key", "authentication_error"), (error.GetProperty("code").GetString(), error.GetProperty("type").GetString()));
        }

        Assert.Equal(HttpStatusCode.Unauthorized, nativeAfterRevoke.StatusCode);
        Assert.Equal("revoked_api_key", Error(await JsonAsync(nativeAfterRevoke, HttpStatusCode.Unauthorized, ct)).Code);
        Assert.Equal(1, againExit);
        Assert.Contains($"No unrevoked key '{id}'", againError);
        Assert.Matches($"^{id}\\s+alice\\s+default\\s+revoked\\s", Assert.Single(Lines(list), l => l.StartsWith(id, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(new[] { "--user", "alice", "--tier", "platinum" }, "The tier 'platinum' is not configured")]
    [InlineData(new[] { "--user", "al ice" }, "The user must be 1 to 64 letters")]
    [InlineData(new[] { "--user", "alice/../root" }, "The user must be 1 to 64 letters")]
    [InlineData(new[] { "--user", "" }, "The user must be 1 to 64 letters")]
    [InlineData(new[] { "--tier", "default" }, "The user must be 1 to 64 letters")]
    [InlineData(new[] { "--user", "--admin" }, "--user needs a value")]
    [InlineData(new[] { "--user", "alice", "--tier", "--admin" }, "--tier needs a value")]
    [InlineData(new[] { "--user", "alice", "--tier" }, "--tier needs a value")]
    [InlineData(new[] { "--user", "alice", "--expires", "soon" }, "--expires must be a duration such as 30d")]
    [InlineData(new[] { "--user", "alice", "--expires", "0d" }, "--expires must be a duration such as 30d")]
    [InlineData(new[] { "--user", "alice", "--expires", "-3h" }, "--expires must be a duration such as 30d")]
    [InlineData(new[] { "--user", "alice", "--expires" }, "--expires must be a duration such as 30d")]
    [InlineData(new[] { "--user", "alice", "--colour", "blue" }, "unknown flag '--colour' for 'create'")]
    public async Task Create_WithBadInput_FailsWithAClearMessage_AndStoresNothing(string[] arguments, string message)
    {
        var (exit, output, error) = await RunAsync(["create", .. arguments]);
        var (_, list, _) = await RunAsync("list");

        Assert.NotEqual(0, exit);
        Assert.Contains(message, error);
        Assert.Equal("", output);
        Assert.StartsWith("No keys yet", list);
    }

    [Theory]
    [InlineData("0123456789abcdef")]
    [InlineData("not-a-key")]
    public async Task Revoke_OfAnUnknownId_ExitsOne(string id)
    {
        await RunAsync("create", "--user", "alice");

        var (exit, output, error) = await RunAsync("revoke", id);
        var (_, list, _) = await RunAsync("list");

        Assert.Equal(1, exit);
        Assert.Equal("", output);
        Assert.Contains($"No unrevoked key '{id}'", error);
        Assert.Contains(" active ", list);
    }

    [Fact]
    public async Task UnknownCommand_OrRevokeWithoutAnId_ExitsTwo_NamingTheMistake_WithAHintToAskForHelp()
    {
        var (unknownExit, _, unknownError) = await RunAsync("rotate");
        var (bareExit, _, bareError) = await RunAsync("revoke");

        Assert.Equal((2, 2), (unknownExit, bareExit));
        Assert.Equal(["anteroom keys: unknown command 'rotate'.", "Run 'anteroom keys --help' for usage."], Lines(unknownError));
        Assert.Equal(["anteroom keys: revoke needs the KEY_ID to revoke (see 'anteroom keys list').", "Run 'anteroom keys --help' for usage."], Lines(bareError));
    }

    private static string Single(string output) => Assert.Single(Lines(output));
}
