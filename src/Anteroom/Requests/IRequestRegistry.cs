using System.Security.Cryptography;

namespace Anteroom.Requests;

/// <summary>
/// The live and recently ended requests, by id, so holders can follow, replay and cancel them and the operator can
/// see whose they are.
/// </summary>
/// <remarks>
/// The requests themselves (<see cref="LiveRequest"/>) live on the replica that runs them. In Redis mode
/// (<see cref="RedisRequestRegistry"/>) every replica also records its requests in Redis, so any replica can show,
/// follow and stop a request another one runs (<see cref="SharedRequest"/>); the in-process registry
/// (<see cref="InProcessRequestRegistry"/>) knows of no other replica. Every implementation passes the same
/// contract tests.
/// </remarks>
internal interface IRequestRegistry
{
    /// <summary>A new request id: 120 random bits, so an id cannot be guessed.</summary>
    static string NewId() => "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(15));

    /// <summary>Whether <paramref name="id"/> has the shape <see cref="NewId"/> gives.</summary>
    static bool IsId(string id) =>
        id.Length == 34 && id.StartsWith("req_", StringComparison.Ordinal) && !id.AsSpan(4).ContainsAnyExcept("0123456789abcdef");

    /// <summary>Registers an admitted request under its id.</summary>
    ValueTask AddAsync(LiveRequest request);

    /// <summary>
    /// The request with this id, only if the caller owns it or is an admin: nobody else learns that the id exists.
    /// </summary>
    ValueTask<LiveRequest?> FindAsync(string id, Identity.Caller caller, CancellationToken cancellationToken = default);

    /// <summary>The request with this id, whoever owns it (for the operator).</summary>
    ValueTask<LiveRequest?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>The owner's live and recently ended requests, newest first.</summary>
    ValueTask<IReadOnlyList<LiveRequest>> OwnedByAsync(string owner, CancellationToken cancellationToken = default);

    /// <summary>
    /// A request another replica admitted, only if the caller owns it or is an admin; null when there is none (always,
    /// for a single gateway).
    /// </summary>
    ValueTask<SharedRequest?> FindElsewhereAsync(string id, Identity.Caller caller, CancellationToken cancellationToken = default);

    /// <summary>The owner's requests that other replicas admitted and still keep, newest first.</summary>
    ValueTask<IReadOnlyList<SharedRequest>> OwnedElsewhereAsync(string owner, CancellationToken cancellationToken = default);

    /// <summary>
    /// Asks the replica that runs <paramref name="request"/> to stop it, telling its holders <paramref name="reason"/>;
    /// false when that replica is not there to hear it.
    /// </summary>
    ValueTask<bool> StopElsewhereAsync(SharedRequest request, string reason);

    /// <summary>Stops every request that has not ended, telling its holders why.</summary>
    ValueTask StopAllAsync(string reason);

    /// <summary>Stops every request of this replica still waiting for a slot, telling its holders why.</summary>
    ValueTask StopWaitingAsync(string reason);

    /// <summary>Forgets requests that ended before <paramref name="endedBefore"/>; returns how many.</summary>
    ValueTask<int> SweepAsync(DateTimeOffset endedBefore);
}
