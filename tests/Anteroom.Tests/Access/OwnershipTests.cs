using System.Net;
using Anteroom.Simulator;
using static Anteroom.Tests.ConversationHttp;

namespace Anteroom.Tests.Access;

/// <summary>
/// What belongs to one caller is invisible to every other: another user's conversation or request answers 404
/// whatever they know of its id, and is left as it was. Only an admin key reaches across.
/// </summary>
public sealed class OwnershipTests
{
    private static Task<TestGateway> StartAsync(int slots = 1)
    {
        var simulator = new SimulatorOptions { Models = ["llama3.1:8b"], Parallel = slots, TtftMs = 1, TokensPerSecond = 2000, OutputTokens = 12 };
        return TestGateway.StartAsync(new TestBackend("gpu", simulator, Slots: slots));
    }

    [Fact]
    public async Task AnotherUser_CannotRead_Rename_Delete_OrChatIntoAConversation()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var bob = gateway.Client("bob");
        string id = Id(await CreateAsync(alice, ct));
        await ChatAsync(alice, new { conversation_id = id, message = "Alice's secret plans", max_tokens = 4 }, ct);
        var before = await GetAsync(alice, id, ct);
        long admittedBefore = (await gateway.Queue.GetSnapshotAsync()).Admitted;

        var read = await SendAsync(bob, HttpMethod.Get, $"conversations/{id}", HttpStatusCode.NotFound, ct);
        var renamed = await SendAsync(bob, HttpMethod.Patch, $"conversations/{id}", HttpStatusCode.NotFound, ct, new { title = "Bob was here" });
        var deleted = await SendAsync(bob, HttpMethod.Delete, $"conversations/{id}", HttpStatusCode.NotFound, ct);
        var chatted = await SendAsync(bob, HttpMethod.Post, "chat", HttpStatusCode.NotFound, ct, new { conversation_id = id, message = "Tell me" });
        var streamed = await SendAsync(bob, HttpMethod.Post, "chat/stream", HttpStatusCode.NotFound, ct, new { conversation_id = id, message = "Tell me" });
        var bobsList = await ListAsync(bob, ct);
        var after = await GetAsync(alice, id, ct);

        Assert.All([read, renamed, deleted, chatted, streamed], body => Assert.Equal("conversation_not_found", Error(body).Code));
        // The answer to a stranger is the same as for an id that never existed.
        var unknown = await SendAsync(bob, HttpMethod.Get, "conversations/conv_000000000000000000000000", HttpStatusCode.NotFound, ct);
        Assert.Equal(unknown.GetProperty("error").GetProperty("message").GetString()!.Replace("conv_000000000000000000000000", id, StringComparison.Ordinal),
            read.GetProperty("error").GetProperty("message").GetString());
        Assert.Empty(bobsList);
        Assert.Equal(before.GetRawText(), after.GetRawText());
        Assert.Equal(admittedBefore, (await gateway.Queue.GetSnapshotAsync()).Admitted);
    }

    [Fact]
    public async Task AnotherUser_CannotSee_Follow_OrCancelARequest()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var bob = gateway.Client("bob");
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(alice, new { message = "Alice asks" }, ct);
        await running.ReadUntilAsync(ct, "started");
        string id = running.RequestId;

        var status = await SendAsync(bob, HttpMethod.Get, $"queue/requests/{id}", HttpStatusCode.NotFound, ct);
        var replay = await SendAsync(bob, HttpMethod.Get, $"queue/requests/{id}/events", HttpStatusCode.NotFound, ct);
        var cancel = await SendAsync(bob, HttpMethod.Delete, $"queue/requests/{id}", HttpStatusCode.NotFound, ct);
        var bobsList = await SendAsync(bob, HttpMethod.Get, "queue/requests", HttpStatusCode.OK, ct);
        var alicesList = await SendAsync(alice, HttpMethod.Get, "queue/requests", HttpStatusCode.OK, ct);
        var stillRunning = await SendAsync(alice, HttpMethod.Get, $"queue/requests/{id}", HttpStatusCode.OK, ct);
        gateway.Simulator("gpu").Release();
        var events = await running.ReadToEndAsync(ct);

        Assert.All([status, replay, cancel], body => Assert.Equal("not_found", Error(body).Code));
        Assert.Empty(bobsList.GetProperty("requests").EnumerateArray());
        Assert.Equal([id], alicesList.GetProperty("requests").EnumerateArray().Select(r => Text(r, "request_id")));
        Assert.Equal("running", Text(stillRunning, "state"));
        Assert.Equal("done", events[^1].Type);
    }

    [Fact]
    public async Task CancelAll_CancelsOnlyTheCallersOwnLiveRequests()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync(slots: 2);
        var alice = gateway.Client("alice");
        var bob = gateway.Client("bob");
        // One of Bob's has already ended: cancelling everything leaves it out.
        var bobsEnded = await ChatAsync(bob, new { message = "Bob's first", max_tokens = 2 }, ct);
        gateway.Simulator("gpu").Hold();
        using var alices = await SseStream.ChatAsync(alice, new { message = "Alice asks" }, ct);
        await alices.ReadUntilAsync(ct, "started");
        using var bobsRunning = await SseStream.ChatAsync(bob, new { message = "Bob asks" }, ct);
        await bobsRunning.ReadUntilAsync(ct, "started");
        using var bobsWaiting = await SseStream.ChatAsync(bob, new { message = "Bob asks again" }, ct);
        await bobsWaiting.ReadUntilAsync(ct, "queued");

        var cancelled = await SendAsync(bob, HttpMethod.Delete, "queue/requests", HttpStatusCode.OK, ct);
        var bobsRunningEnd = await bobsRunning.ReadToEndAsync(ct);
        var bobsWaitingEnd = await bobsWaiting.ReadToEndAsync(ct);
        var alicesStatus = await SendAsync(alice, HttpMethod.Get, $"queue/requests/{alices.RequestId}", HttpStatusCode.OK, ct);
        var bobsList = await SendAsync(bob, HttpMethod.Get, "queue/requests", HttpStatusCode.OK, ct);
        gateway.Simulator("gpu").Release();
        var alicesEnd = await alices.ReadToEndAsync(ct);

        Assert.Equal(
            new[] { bobsRunning.RequestId, bobsWaiting.RequestId }.Order(),
            cancelled.GetProperty("cancelled").EnumerateArray().Select(e => e.GetString()!).Order());
        Assert.Equal(("cancelled", "cancelled_by_user"), (bobsRunningEnd[^1].Type, bobsRunningEnd[^1].Text("reason")));
        Assert.Equal(("cancelled", "cancelled_by_user"), (bobsWaitingEnd[^1].Type, bobsWaitingEnd[^1].Text("reason")));
        Assert.Equal("running", Text(alicesStatus, "state"));
        Assert.Equal("done", alicesEnd[^1].Type);
        // Bob's own list: newest first, his ended request still completed, never Alice's.
        Assert.Equal(
            [(bobsWaiting.RequestId, "cancelled"), (bobsRunning.RequestId, "cancelled"), (Text(bobsEnded, "request_id"), "completed")],
            bobsList.GetProperty("requests").EnumerateArray().Select(r => (Text(r, "request_id"), Text(r, "state"))));
    }

    [Fact]
    public async Task AnAdminKey_CanSeeAndCancelAnyonesRequest_AndAnOrdinaryKeyCannot()
    {
        var ct = Within30Seconds();
        await using var gateway = await StartAsync();
        var alice = gateway.Client("alice");
        var admin = gateway.KeyClient(await gateway.CreateKeyAsync("root", admin: true));
        var ordinary = gateway.KeyClient(await gateway.CreateKeyAsync("mallory"));
        gateway.Simulator("gpu").Hold();
        using var running = await SseStream.ChatAsync(alice, new { message = "Alice asks" }, ct);
        await running.ReadUntilAsync(ct, "started");
        string id = running.RequestId;

        var refused = await SendAsync(ordinary, HttpMethod.Delete, $"queue/requests/{id}", HttpStatusCode.NotFound, ct);
        var seen = await SendAsync(admin, HttpMethod.Get, $"queue/requests/{id}", HttpStatusCode.OK, ct);
        await SendAsync(admin, HttpMethod.Delete, $"queue/requests/{id}", HttpStatusCode.Accepted, ct);
        var events = await running.ReadToEndAsync(ct);
        var ended = await SendAsync(alice, HttpMethod.Get, $"queue/requests/{id}", HttpStatusCode.OK, ct);
        var again = await SendAsync(admin, HttpMethod.Delete, $"queue/requests/{id}", HttpStatusCode.Conflict, ct);
        gateway.Simulator("gpu").Release();

        Assert.Equal("not_found", Error(refused).Code);
        Assert.Equal("running", Text(seen, "state"));
        Assert.Equal("cancelled", events[^1].Type);
        Assert.Equal("cancelled", Text(ended, "state"));
        Assert.Equal("already_ended", Error(again).Code);
    }
}
