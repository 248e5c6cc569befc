namespace Anteroom.Requests;

/// <summary>
/// What the door reports to the operator's metrics: refusals, and admitted requests as they end. Owned here so
/// that the request core does not depend on the admin API, whose <c>GatewayMetrics</c> implements it.
/// </summary>
internal interface IRequestMetrics
{
    /// <summary>A request was turned away at admission, with the code its caller was given.</summary>
    void Refused(string code);

    /// <summary>An admitted request ended (any outcome), having generated <paramref name="tokensOut"/> tokens.</summary>
    void Ended(LiveRequest request, int tokensOut);
}
