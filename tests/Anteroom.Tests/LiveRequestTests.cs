using System.Text;
using Anteroom.Backends;
using Anteroom.Configuration;
using Anteroom.Identity;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests;

public sealed class LiveRequestTests
{
    private readonly FakeTimeProvider time = new();

    [Fact]
    public async Task An_ended_request_lets_go_of_its_prompt_and_keeps_what_its_status_shows()
    {
        var queue = RequestQueue.CreateInProcess(new SchedulerOptions(), [new BackendDefinition("gpu", 1, ["m"])], time);
        var admission = await queue.AdmitAsync(new TicketRequest { Id = IRequestRegistry.NewId(), Owner = "user:ada", Model = "m" });
        var caller = new Caller("user:ada", "ada", TierOptions.DefaultName, new TierOptions(), null, false, false);
        string prompt = new('x', 100_000);
        var arrival = new Arrival(caller, new GenerationRequest { Model = "m", Messages = [new ChatMessage("user", prompt)], MaxOutputTokens = 16 })
        {
            Protocol = ClientProtocol.OpenAI,
            Relay = new RelayPayload("/v1/chat/completions", Encoding.UTF8.GetBytes(prompt), Streaming: false),
            Conversation = new ConversationTurn("c1", prompt),
            ReservedTokens = 40,
        };
        var request = new LiveRequest(admission.Ticket!, arrival, time);

        Assert.Same(arrival, request.Arrival);
        request.End(new RequestEvent.Cancelled("cancelled_by_user"));
        Assert.Same(arrival, request.Arrival);
        request.Publish();

        Assert.Empty(request.Generation.Messages);
        Assert.Null(request.Arrival.Relay);
        Assert.Equal("", request.Arrival.Conversation?.Message);
        Assert.Equal("m", request.Generation.Model);
        Assert.Equal("c1", request.Arrival.Conversation?.Id);
        Assert.Equal(ClientProtocol.OpenAI, request.Arrival.Protocol);
        Assert.Same(caller, request.Caller);
        Assert.Equal(40, request.Arrival.ReservedTokens);
        Assert.IsType<RequestEvent.Cancelled>(await request.Ended);
    }
}
