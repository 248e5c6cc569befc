using System.Net;
using System.Text.Json;
using Anteroom.Simulator;
using static Anteroom.Tests.ConversationHttp;

namespace Anteroom.Tests.Conversations;

/// <summary>Stored conversations through the native API, against the real gateway and a simulated model server.</summary>
public sealed class ConversationTests
{
    private const string DefaultTitle = "New conversation";

    private static Task<TestGateway> StartAsync(IDictionary<string, string?>? settings = null, SimulatorOptions? simulator = null) =>
        TestGateway.StartAsync([new TestBackend("gpu", simulator ?? TestGateway.FastSimulator())], settings ?? new Dictionary<string, string?>());

    [Fact]
    public async Task Create_Get_Rename_Delete_RoundTrip()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");

        var untitled = await CreateAsync(alice, ct);
        var titled = await CreateAsync(alice, ct, "  Trip plans  ");
        using (var emptyBody = new StringContent("", null, "application/json"))
        using (var created = await alice.PostAsync("conversations", emptyBody, ct))
        {
            var withEmptyBody = await JsonAsync(created, HttpStatusCode.Created, ct);
            Assert.Equal(DefaultTitle, Text(withEmptyBody, "title"));
        }

        var noTitleField = await SendAsync(alice, HttpMethod.Post, "conversations", HttpStatusCode.Created, ct, new { });
        var fetched = await GetAsync(alice, Id(titled), ct);
        var renamed = await SendAsync(alice, HttpMethod.Patch, $"conversations/{Id(untitled)}", HttpStatusCode.OK, ct, new { title = "Renamed" });
        var afterRename = await GetAsync(alice, Id(untitled), ct);
        using var deleted = await alice.DeleteAsync($"conversations/{Id(titled)}", ct);
        var gone = await SendAsync(alice, HttpMethod.Get, $"conversations/{Id(titled)}", HttpStatusCode.NotFound, ct);
        var deletedAgain = await SendAsync(alice, HttpMethod.Delete, $"conversations/{Id(titled)}", HttpStatusCode.NotFound, ct);
        var renameGone = await SendAsync(alice, HttpMethod.Patch, $"conversations/{Id(titled)}", HttpStatusCode.NotFound, ct, new { title = "Too late" });
        var remaining = await ListAsync(alice, ct);

        Assert.StartsWith("conv_", Id(untitled));
        Assert.NotEqual(Id(untitled), Id(titled));
        Assert.Equal((DefaultTitle, 0), (Text(untitled, "title"), untitled.GetProperty("message_count").GetInt32()));
        Assert.Equal("Trip plans", Text(titled, "title"));
        Assert.Equal(DefaultTitle, Text(noTitleField, "title"));
        Assert.Equal((Id(titled), "Trip plans"), (Id(fetched), Text(fetched, "title")));
        Assert.Empty(Messages(fetched));
        Assert.Equal(titled.GetProperty("created_at").GetDateTimeOffset(), fetched.GetProperty("created_at").GetDateTimeOffset());
        Assert.Equal(("Renamed", "Renamed"), (Text(renamed, "title"), Text(afterRename, "title")));
        Assert.True(renamed.GetProperty("updated_at").GetDateTimeOffset() >= untitled.GetProperty("updated_at").GetDateTimeOffset());
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(("conversation_not_found", "conversation_id"), Error(gone));
        Assert.Equal("conversation_not_found", Error(deletedAgain).Code);
        Assert.Equal("conversation_not_found", Error(renameGone).Code);
        Assert.DoesNotContain(Id(titled), remaining.Select(Id));
        Assert.Contains(Id(untitled), remaining.Select(Id));
    }

    [Fact]
    public async Task List_IsNewestUpdateFirst_AndCountsMessages()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var older = await CreateAsync(alice, ct, "Older");
        var newer = await CreateAsync(alice, ct, "Newer");
        // A chat moves the older one to the top: its answer is stored after the newer one was created.
        await ChatAsync(alice, new { conversation_id = Id(older), message = "hello", max_tokens = 3 }, ct);

        var list = await ListAsync(alice, ct);

        Assert.Equal(2, list.Count);
        var olderNow = await GetAsync(alice, Id(older), ct);
        var newerNow = await GetAsync(alice, Id(newer), ct);
        var olderUpdated = olderNow.GetProperty("updated_at").GetDateTimeOffset();
        var newerUpdated = newerNow.GetProperty("updated_at").GetDateTimeOffset();
        Assert.Equal(Messages(olderNow)[^1].GetProperty("at").GetDateTimeOffset(), olderUpdated);
        Assert.True(olderUpdated >= newerUpdated);
        // Newest update first; updates in the same millisecond are ordered by id.
        string[] expected = olderUpdated > newerUpdated || string.CompareOrdinal(Id(older), Id(newer)) < 0
            ? [Id(older), Id(newer)]
            : [Id(newer), Id(older)];
        Assert.Equal(expected, list.Select(Id));
        Assert.Equal(2, list.Single(c => Id(c) == Id(older)).GetProperty("message_count").GetInt32());
        Assert.Equal(0, list.Single(c => Id(c) == Id(newer)).GetProperty("message_count").GetInt32());
    }

    public static TheoryData<string, string> BadTitles => new()
    {
        { "{\"title\": 42}", "title" },
        { "{\"title\": true}", "title" },
        { "{\"title\": [\"a\"]}", "title" },
        { "{\"title\": \"\"}", "title" },
        { "{\"title\": \"   \"}", "title" },
        { "{\"title\": \"" + new string('x', 201) + "\"}", "title" },
        { "{\"title\": \"bell\\u0007\"}", "title" },
        { "{\"title\": \"two\\nlines\"}", "title" },
        { "{\"title\": \"nul\\u0000\"}", "title" },
    };

    [Theory]
    [MemberData(nameof(BadTitles))]
    public async Task BadTitle_Gets400NamingTitle_OnCreateAndRename(string body, string field)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var existing = await CreateAsync(alice, ct, "Kept");

        var onCreate = await SendRawAsync(alice, HttpMethod.Post, "conversations", body, HttpStatusCode.BadRequest, ct);
        var onRename = await SendRawAsync(alice, HttpMethod.Patch, $"conversations/{Id(existing)}", body, HttpStatusCode.BadRequest, ct);

        Assert.Equal(("invalid_request", field), Error(onCreate));
        Assert.Equal(("invalid_request", field), Error(onRename));
        Assert.Equal("Kept", Text(await GetAsync(alice, Id(existing), ct), "title"));
        Assert.Equal([Id(existing)], (await ListAsync(alice, ct)).Select(Id));
    }

    [Fact]
    public async Task LongestTitle_IsAccepted()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        string title = new('x', 200);

        var created = await CreateAsync(gateway.Client("alice"), ct, title);

        Assert.Equal(title, Text(created, "title"));
    }

    [Theory]
    [InlineData("[\"title\"]", "invalid_request")]
    [InlineData("\"Trip plans\"", "invalid_request")]
    [InlineData("42", "invalid_request")]
    [InlineData("{\"title\": ", "invalid_json")]
    [InlineData("not json", "invalid_json")]
    public async Task BodyThatIsNotAnObject_Gets400_NotA500(string body, string code)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var existing = await CreateAsync(alice, ct, "Kept");

        var onCreate = await SendRawAsync(alice, HttpMethod.Post, "conversations", body, HttpStatusCode.BadRequest, ct);
        var onRename = await SendRawAsync(alice, HttpMethod.Patch, $"conversations/{Id(existing)}", body, HttpStatusCode.BadRequest, ct);

        Assert.Equal(code, Error(onCreate).Code);
        Assert.Equal(code, Error(onRename).Code);
        Assert.Equal([Id(existing)], (await ListAsync(alice, ct)).Select(Id));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"title\": null}")]
    public async Task Rename_WithoutATitle_Gets400NamingTitle(string body)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var existing = await CreateAsync(alice, ct, "Kept");

        var refused = await SendRawAsync(alice, HttpMethod.Patch, $"conversations/{Id(existing)}", body, HttpStatusCode.BadRequest, ct);

        Assert.Equal(("invalid_request", "title"), Error(refused));
        Assert.Equal("Kept", Text(await GetAsync(alice, Id(existing), ct), "title"));
    }

    [Fact]
    public async Task ChattingTwice_StoresBothTurnsInOrder_SendsTheHistory_AndTitlesTheConversation()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var conversation = await CreateAsync(alice, ct);
        string id = Id(conversation);
        const string First = "Plan a trip to Rome for four days\nwith two children who like trains";
        const string Second = "And Florence?";

        var one = await ChatAsync(alice, new { conversation_id = id, message = First, max_tokens = 6 }, ct);
        var two = await ChatAsync(alice, new { conversation_id = id, message = Second, max_tokens = 6 }, ct);
        var stored = await GetAsync(alice, id, ct);
        var listed = (await ListAsync(alice, ct)).Single();
        var status = await SendAsync(alice, HttpMethod.Get, $"queue/requests/{Text(two, "request_id")}", HttpStatusCode.OK, ct);

        var messages = Messages(stored);
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => Text(m, "role")));
        Assert.Equal([First, Text(one, "text"), Second, Text(two, "text")], messages.Select(m => Text(m, "content")));
        Assert.Equal([1L, 2, 3, 4], messages.Select(m => m.GetProperty("seq").GetInt64()));
        string[] requestIds = [Text(one, "request_id"), Text(one, "request_id"), Text(two, "request_id"), Text(two, "request_id")];
        Assert.Equal(requestIds, messages.Select(m => Text(m, "request_id")));
        Assert.All(messages.Where(m => Text(m, "role") == "assistant"), m =>
        {
            Assert.Equal("llama3.1:8b", Text(m, "model"));
            Assert.Equal("length", Text(m, "finish_reason"));
        });
        Assert.All(messages.Where(m => Text(m, "role") == "user"), m => Assert.False(m.TryGetProperty("finish_reason", out _)));
        // The second message alone is far shorter than the first: more prompt tokens means the history was sent.
        Assert.True(PromptTokens(two) > PromptTokens(one), $"second prompt {PromptTokens(two)} tokens, first {PromptTokens(one)}");
        Assert.True(PromptTokens(two) * 4 >= First.Length + Text(one, "text").Length + Second.Length, $"second prompt {PromptTokens(two)} tokens");
        Assert.Equal("Plan a trip to Rome for four days", Text(stored, "title"));
        Assert.Equal(("Plan a trip to Rome for four days", 4), (Text(listed, "title"), listed.GetProperty("message_count").GetInt32()));
        Assert.Equal(id, Text(status, "conversation_id"));
    }

    [Fact]
    public async Task EveryAnswer_IsStoredBeforeTheClientSeesIt()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));

        // The gap between an answer reaching the client and its storage, if there were one, is short: several
        // rounds, each reading straight after its answer, give it many chances to show.
        for (int round = 1; round <= 100; round++)
        {
            var answer = await ChatAsync(alice, new { conversation_id = id, message = $"Round {round}", max_tokens = 2 }, ct);
            var messages = Messages(await GetAsync(alice, id, ct));

            Assert.Equal(2 * round, messages.Count);
            Assert.Equal(("assistant", Text(answer, "text"), Text(answer, "request_id")),
                (Text(messages[^1], "role"), Text(messages[^1], "content"), Text(messages[^1], "request_id")));
        }
    }

    [Fact]
    public async Task RefusedFirstMessage_LeavesTheConversationUntitledAndEmpty()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));

        var refused = await SendAsync(alice, HttpMethod.Post, "chat", HttpStatusCode.NotFound, ct, new { conversation_id = id, message = "Lost words", model = "no-such-model" });
        var afterRefusal = await GetAsync(alice, id, ct);
        await ChatAsync(alice, new { conversation_id = id, message = "Kept words", max_tokens = 2 }, ct);
        var afterAnswer = await GetAsync(alice, id, ct);

        Assert.Equal(("model_not_found", "model"), Error(refused));
        Assert.Equal(DefaultTitle, Text(afterRefusal, "title"));
        Assert.Empty(Messages(afterRefusal));
        Assert.Equal("Kept words", Text(afterAnswer, "title"));
        Assert.Equal(["Kept words"], Messages(afterAnswer).Where(m => Text(m, "role") == "user").Select(m => Text(m, "content")));
    }

    [Fact]
    public async Task FirstMessage_DoesNotRenameAConversationTheUserTitled()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var conversation = await CreateAsync(alice, ct, "My own title");

        await ChatAsync(alice, new { conversation_id = Id(conversation), message = "Something else entirely", max_tokens = 3 }, ct);

        Assert.Equal("My own title", Text(await GetAsync(alice, Id(conversation), ct), "title"));
    }

    [Fact]
    public async Task ConversationId_WithMessages_Gets400_AndStoresNothing()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));
        var messages = new[] { new { role = "user", content = "earlier" } };

        var withBoth = await SendAsync(alice, HttpMethod.Post, "chat", HttpStatusCode.BadRequest, ct, new { conversation_id = id, messages, message = "now" });
        var withMessagesOnly = await SendAsync(alice, HttpMethod.Post, "chat/stream", HttpStatusCode.BadRequest, ct, new { conversation_id = id, messages });
        var emptyId = await SendAsync(alice, HttpMethod.Post, "chat", HttpStatusCode.BadRequest, ct, new { conversation_id = "", message = "now" });
        var numericId = await SendRawAsync(alice, HttpMethod.Post, "chat", "{\"conversation_id\": 7, \"message\": \"now\"}", HttpStatusCode.BadRequest, ct);
        var stored = await GetAsync(alice, id, ct);

        Assert.Equal(("invalid_request", "messages"), Error(withBoth));
        Assert.Equal(("invalid_request", "messages"), Error(withMessagesOnly));
        Assert.Equal(("invalid_request", "conversation_id"), Error(emptyId));
        Assert.Equal(("invalid_request", "conversation_id"), Error(numericId));
        Assert.Empty(Messages(stored));
        Assert.Equal(DefaultTitle, Text(stored, "title"));
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task UnknownConversation_Gets404_OnBothChatEndpoints()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");

        var chat = await SendAsync(alice, HttpMethod.Post, "chat", HttpStatusCode.NotFound, ct, new { conversation_id = "conv_nope", message = "hi" });
        var stream = await SendAsync(alice, HttpMethod.Post, "chat/stream", HttpStatusCode.NotFound, ct, new { conversation_id = "conv_nope", message = "hi" });

        Assert.Equal(("conversation_not_found", "conversation_id"), Error(chat));
        Assert.Equal(("conversation_not_found", "conversation_id"), Error(stream));
        Assert.Equal(0, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task History_IsBoundedByMaxHistoryMessages_ButEveryTurnIsStored()
    {
        var (one, two, three, stored) = await LongThenTwoShortTurnsAsync("MaxHistoryMessages", "2");

        // The second request carries the first exchange (the last two messages), so more than the first alone...
        Assert.True(PromptTokens(two) > PromptTokens(one), $"second {PromptTokens(two)}, first {PromptTokens(one)}");
        // ...while the third carries only the second exchange: the long first message is no longer sent.
        Assert.True(PromptTokens(three) < PromptTokens(one) / 4, $"third {PromptTokens(three)}, first {PromptTokens(one)}");
        Assert.Equal(6, Messages(stored).Count);
        Assert.Equal(LongMessage, Text(Messages(stored)[0], "content"));
    }

    [Fact]
    public async Task History_IsBoundedByMaxHistoryTokens()
    {
        var (one, two, three, stored) = await LongThenTwoShortTurnsAsync("MaxHistoryTokens", "100");

        Assert.True(PromptTokens(one) > 250, $"first {PromptTokens(one)}");
        // The long first message is over the budget: neither later request carries it...
        Assert.True(PromptTokens(two) < 100, $"second {PromptTokens(two)}");
        Assert.True(PromptTokens(three) < 100, $"third {PromptTokens(three)}");
        // ...but the short turns after it fit, and are sent: the third carries more history than the second.
        Assert.True(PromptTokens(three) > PromptTokens(two), $"third {PromptTokens(three)}, second {PromptTokens(two)}");
        Assert.Equal(6, Messages(stored).Count);
    }

    private static readonly string LongMessage = "Remember this long list: " + string.Join(' ', Enumerable.Range(1, 150).Select(i => $"item{i}"));

    /// <summary>With one history bound set, a conversation of a long message then two short ones; the three answers and the stored conversation.</summary>
    private static async Task<(JsonElement One, JsonElement Two, JsonElement Three, JsonElement Stored)> LongThenTwoShortTurnsAsync(string bound, string value)
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(new Dictionary<string, string?> { [$"Anteroom:Conversations:{bound}"] = value });
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));

        var one = await ChatAsync(alice, new { conversation_id = id, message = LongMessage, max_tokens = 3 }, ct);
        var two = await ChatAsync(alice, new { conversation_id = id, message = "Next?", max_tokens = 3 }, ct);
        var three = await ChatAsync(alice, new { conversation_id = id, message = "And?", max_tokens = 3 }, ct);
        return (one, two, three, await GetAsync(alice, id, ct));
    }

    [Fact]
    public async Task AnswerStoppedBeforeItsFirstToken_StoresOnlyTheUserTurn()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));
        gateway.Simulator("gpu").Hold();

        using var stream = await SseStream.ChatAsync(alice, new { conversation_id = id, message = "Never answered" }, ct);
        await stream.ReadUntilAsync(ct, "started");
        await SendAsync(alice, HttpMethod.Delete, $"queue/requests/{stream.RequestId}", HttpStatusCode.Accepted, ct);
        var events = await stream.ReadToEndAsync(ct);
        var stored = Messages(await GetAsync(alice, id, ct));

        Assert.Equal("cancelled", events[^1].Type);
        Assert.DoesNotContain(events, e => e.Type == "token");
        var turn = Assert.Single(stored);
        Assert.Equal(("user", "Never answered", stream.RequestId), (Text(turn, "role"), Text(turn, "content"), Text(turn, "request_id")));
        gateway.Simulator("gpu").Release();
    }

    [Fact]
    public async Task AnswerStoppedMidway_StoresTheTextSoFar_AsCancelled()
    {
        var ct = Within30Seconds();
        // Slow and long: the answer cannot finish within the test's time, so it is still running when stopped.
        var slow = new SimulatorOptions { Models = ["llama3.1:8b"], TtftMs = 1, TokensPerSecond = 20, OutputTokens = 4000 };
        await using var gateway = await StartAsync(simulator: slow);
        var alice = gateway.Client("alice");
        string id = Id(await CreateAsync(alice, ct));

        using var stream = await SseStream.ChatAsync(alice, new { conversation_id = id, message = "Talk for a long time" }, ct);
        var before = await stream.ReadUntilAsync(ct, "token");
        await SendAsync(alice, HttpMethod.Delete, $"queue/requests/{stream.RequestId}", HttpStatusCode.Accepted, ct);
        var events = before.Concat(await stream.ReadToEndAsync(ct)).ToList();
        var stored = Messages(await GetAsync(alice, id, ct));

        Assert.Equal("cancelled", events[^1].Type);
        Assert.Equal("cancelled_by_user", events[^1].Text("reason"));
        string streamed = string.Concat(events.Where(e => e.Type == "token").Select(e => e.Text("text")));
        Assert.NotEmpty(streamed);
        Assert.Equal(["user", "assistant"], stored.Select(m => Text(m, "role")));
        Assert.Equal(streamed, Text(stored[1], "content"));
        Assert.Equal(("cancelled", stream.RequestId), (Text(stored[1], "finish_reason"), Text(stored[1], "request_id")));
    }

    [Fact]
    public async Task Conversations_SurviveARestart_ForTheSameBrowser()
    {
        var ct = Within30Seconds();
        string directory = TestGateway.NewDataDirectory();
        var settings = new Dictionary<string, string?> { ["Anteroom:Data:Directory"] = directory };
        try
        {
            JsonElement before;
            List<JsonElement> listedBefore;
            await using (var first = await StartAsync(settings))
            {
                var alice = first.Client("alice");
                string chatted = Id(await CreateAsync(alice, ct));
                await CreateAsync(alice, ct, "Empty one");
                await ChatAsync(alice, new { conversation_id = chatted, message = "Before the restart", max_tokens = 4 }, ct);
                before = await GetAsync(alice, chatted, ct);
                listedBefore = await ListAsync(alice, ct);
            }

            await using var second = await StartAsync(settings);
            var again = second.Client("alice");
            var listedAfter = await ListAsync(again, ct);
            var after = await GetAsync(again, Id(before), ct);
            var strangers = await ListAsync(second.Client("bob"), ct);
            var continued = await ChatAsync(again, new { conversation_id = Id(before), message = "After it", max_tokens = 4 }, ct);
            var messagesAfterContinuing = Messages(await GetAsync(again, Id(before), ct));

            Assert.Equal(listedBefore.Select(c => c.GetRawText()), listedAfter.Select(c => c.GetRawText()));
            Assert.Equal(before.GetRawText(), after.GetRawText());
            Assert.Equal("Before the restart", Text(after, "title"));
            Assert.Equal(2, Messages(after).Count);
            Assert.Empty(strangers);
            Assert.True(PromptTokens(continued) * 4 >= "Before the restart".Length + "After it".Length, $"prompt {PromptTokens(continued)}");
            Assert.Equal(4, messagesAfterContinuing.Count);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
