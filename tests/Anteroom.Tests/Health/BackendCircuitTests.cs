using Anteroom.Configuration;
using Anteroom.Gateway;
using Microsoft.Extensions.Time.Testing;

namespace Anteroom.Tests.Health;

public sealed class BackendCircuitTests
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(T0);

    private BackendCircuit Circuit(int minimumRequests = 10, double ratePercent = 50, int inARow = 5) => new(
        new HealthOptions
        {
            WindowSeconds = 30,
            MinimumRequests = minimumRequests,
            FailureRatePercent = ratePercent,
            FailuresBeforeUnhealthy = inARow,
            CooldownSeconds = 3,
        },
        _time);

    private static void Record(BackendCircuit circuit, string outcomes)
    {
        foreach (char outcome in outcomes)
        {
            circuit.Record(failed: outcome == 'x');
        }
    }

    [Fact]
    public void ABackendFailingAThirdOfRequests_StaysClosed()
    {
        var circuit = Circuit();

        // Failures two in a row now and then, 30 % overall: the old three-in-a-row rule held up, this one does not.
        Record(circuit, "xx.x......xx.x......xx.x......xx.x......");

        Assert.Equal(CircuitState.Closed, circuit.State);
    }

    [Fact]
    public void OpensWhenTheWindowHoldsEnoughRequests_AndHalfOfThemFailed()
    {
        var circuit = Circuit();
        Record(circuit, "x.x.x.x.x");
        Assert.Equal(CircuitState.Closed, circuit.State);

        var change = circuit.Record(failed: false);
        Assert.Equal(CircuitChange.None, change);
        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true));

        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public void FailuresInARow_OpenBeforeTheWindowHasItsMinimum()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 5);

        Record(circuit, "xxxx");
        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true));
    }

    [Fact]
    public void RequestsOlderThanTheWindow_NoLongerCount()
    {
        var circuit = Circuit();
        Record(circuit, "x.x.x.x.x");
        _time.Advance(TimeSpan.FromSeconds(30));

        Record(circuit, "x......");

        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal((7, 1), circuit.Window);
    }

    [Fact]
    public void AfterTheCooldown_HalfOpens_AndASuccessfulTrialCloses()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        Assert.Equal(T0 + TimeSpan.FromSeconds(3), circuit.TrialDueAt);

        _time.Advance(TimeSpan.FromSeconds(2.9));
        Assert.Equal(CircuitChange.None, circuit.CoolDown());
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(CircuitChange.HalfOpened, circuit.CoolDown());

        Assert.Equal(CircuitChange.Closed, circuit.Record(failed: false));
        Assert.Equal(CircuitState.Closed, circuit.State);
    }

    [Fact]
    public void AFailedTrial_OpensAgain_ForAnotherCooldown()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();

        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true));

        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(3), circuit.TrialDueAt);
    }

    [Fact]
    public void ATrialFailedByOneOwnersRequest_LetsTheNextRequestTry_UntilASecondOwnerFailsToo()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();

        var first = circuit.Record(failed: true, owner: "user:mallory");
        var again = circuit.Record(failed: true, owner: "user:mallory");
        var second = circuit.Record(failed: true, owner: "user:alice");

        Assert.Equal((CircuitChange.HalfOpened, CircuitChange.HalfOpened), (first, again));
        Assert.Equal(CircuitChange.Opened, second);
    }

    [Fact]
    public void ATrialFailedByOneOwnersRequest_ThenASuccess_Closes()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();
        circuit.Record(failed: true, owner: "user:mallory");

        Assert.Equal(CircuitChange.Closed, circuit.Record(failed: false));
    }

    [Fact]
    public void WhileOpen_RequestsThatWereAlreadyRunning_DoNotDecide()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);

        Assert.Equal(CircuitChange.None, circuit.Record(failed: false));
        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public void AFailedProbe_OpensAtOnce_AndASuccessfulOneCloses()
    {
        var circuit = Circuit();

        Assert.Equal(CircuitChange.Opened, circuit.Probed(succeeded: false));
        Assert.Equal(CircuitChange.None, circuit.Probed(succeeded: false));
        Assert.Equal(CircuitChange.Closed, circuit.Probed(succeeded: true));
        Assert.Equal(CircuitState.Closed, circuit.State);
    }

    [Fact]
    public void ProbesFailingInARow_DoNotPostponeTheTrial()
    {
        var circuit = Circuit();
        circuit.Probed(succeeded: false);
        _time.Advance(TimeSpan.FromSeconds(2));
        circuit.Probed(succeeded: false);

        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(CircuitChange.HalfOpened, circuit.CoolDown());
    }

    [Fact]
    public void AfterClosing_TheFailuresThatOpenedItAreForgotten()
    {
        var circuit = Circuit(inARow: 3);
        Record(circuit, "xxx");
        circuit.Probed(succeeded: true);

        Record(circuit, "xx");

        Assert.Equal(CircuitState.Closed, circuit.State);
    }

    [Fact]
    public void OneOwnersFailuresInARow_DoNotOpen_HoweverMany()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 3);

        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(CircuitChange.None, circuit.Record(failed: true, owner: "mallory"));
        }

        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal((1, 1), circuit.Window);
    }

    [Fact]
    public void FailuresInARow_FromTwoOwners_Open()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 2);

        circuit.Record(failed: true, owner: "alice");
        circuit.Record(failed: true, owner: "alice");

        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true, owner: "bob"));
    }

    [Fact]
    public void WithTheInARowLimitAtOne_OneOwnersFailure_StillNeedsASecondOwner()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 1);

        Assert.Equal(CircuitChange.None, circuit.Record(failed: true, owner: "alice"));
        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true, owner: "bob"));
    }

    [Fact]
    public void AFailureAboutTheBackend_CorroboratesOneOwnersFailures()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 2);
        circuit.Record(failed: true, owner: "alice");

        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true));
    }

    [Fact]
    public void ASuccessBetween_BreaksTheOwnersRow()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 2);
        circuit.Record(failed: true, owner: "alice");
        circuit.Record(failed: false);

        Assert.Equal(CircuitChange.None, circuit.Record(failed: true, owner: "bob"));
    }

    [Fact]
    public void OneOwnersFailures_AreOneFailedSampleInTheWindow_SoTheRateIgnoresTheirNumber()
    {
        var circuit = Circuit(minimumRequests: 4, ratePercent: 50, inARow: 100);
        Record(circuit, "...");
        for (int i = 0; i < 20; i++)
        {
            circuit.Record(failed: true, owner: "mallory");
        }

        // One failed sample of four: 25 %, whatever mallory sent.
        Assert.Equal((4, 1), circuit.Window);
        Assert.Equal(CircuitState.Closed, circuit.State);

        // A second owner's failure makes it two of five, then three of six: half.
        circuit.Record(failed: true, owner: "alice");
        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal(CircuitChange.Opened, circuit.Record(failed: true, owner: "bob"));
    }

    [Fact]
    public void TheRate_OnOneOwnersFailuresAlone_DoesNotOpen()
    {
        var circuit = Circuit(minimumRequests: 2, ratePercent: 50, inARow: 100);
        circuit.Record(failed: false);

        Assert.Equal(CircuitChange.None, circuit.Record(failed: true, owner: "mallory"));
        Assert.Equal((2, 1), circuit.Window);
    }

    [Fact]
    public void AnOwnersFailures_LeaveTheWindowWithTheirRequests()
    {
        var circuit = Circuit(minimumRequests: 100, inARow: 100);
        circuit.Record(failed: true, owner: "mallory");
        _time.Advance(TimeSpan.FromSeconds(10));
        circuit.Record(failed: true, owner: "mallory");

        _time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal((1, 1), circuit.Window);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal((0, 0), circuit.Window);
    }

    [Fact]
    public void ATrialStoppedBeforeAnyAnswer_AllowsAnotherTrial()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();

        Assert.Equal(CircuitChange.HalfOpened, circuit.TrialAbandoned(answered: false, _time.GetUtcNow()));
        Assert.Equal(CircuitState.HalfOpen, circuit.State);
    }

    [Fact]
    public void ATrialOfAnEarlierRest_EndingWhileALaterTrialRuns_ChangesNothing()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();
        var firstTrialStarted = _time.GetUtcNow();
        // Another request's failure about the backend reopens it; after the cool-down a second trial starts.
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();

        Assert.Equal(CircuitChange.None, circuit.TrialAbandoned(answered: false, firstTrialStarted));
        Assert.Equal(CircuitChange.None, circuit.TrialAbandoned(answered: true, firstTrialStarted));
        Assert.Equal(CircuitState.HalfOpen, circuit.State);
    }

    [Fact]
    public void ATrialStoppedAfterTheBackendBeganToAnswer_Closes()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);
        _time.Advance(TimeSpan.FromSeconds(3));
        circuit.CoolDown();

        Assert.Equal(CircuitChange.Closed, circuit.TrialAbandoned(answered: true, _time.GetUtcNow()));
    }

    [Fact]
    public void AnAbandonedTrial_ChangesNothing_OnceACircuitHasItsVerdict()
    {
        var circuit = Circuit(inARow: 1);
        circuit.Record(failed: true);

        Assert.Equal(CircuitChange.None, circuit.TrialAbandoned(answered: true, _time.GetUtcNow()));
        Assert.Equal(CircuitState.Open, circuit.State);
    }
}
