using System.Security.Cryptography;

namespace Anteroom.Requests;

/// <summary>
/// The live and recently ended requests, by id, so holders can follow, replay and cancel them and the operator can
/// see whose they are.
/// </summary>
/// <remarks>
/// Asynchronous where a registry shared by several replicas would ask its store (a Redis hash of ids to owners,
/// with the requests themselves on the replica that runs them); the in-process one
/// (<see cref="InProcessRequestRegistry"/>) answers at once. Every implementation passes the same contract tests.
/// </remarks>
internal interface IRequestRegistry
{
    /// <summary>A new request id: 120 random bits, so an id cannot be guessed.</summary>
    static string NewId() => "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(15));

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

    /// <summary>Stops every request that has not ended, telling its holders why.</summary>
    ValueTask StopAllAsync(string reason);

    /// <summary>Forgets requests that ended before <paramref name="endedBefore"/>; returns how many.</summary>
    ValueTask<int> SweepAsync(DateTimeOffset endedBefore);
}
