namespace Anteroom.Scheduling;

/// <summary>
/// Measured service figures per backend and model, as exponentially weighted averages so the estimate follows
/// a backend that warms up, slows down under load or changes model.
/// </summary>
internal sealed class ServiceEstimator
{
    private readonly Dictionary<(int Backend, string Model), Figures> _figures = [];
    private readonly ServicePrior _prior;
    private readonly double _alpha;

    public ServiceEstimator(ServicePrior prior, double alpha)
    {
        _prior = prior;
        _alpha = alpha;
    }

    public Figures Get(int backend, string model) =>
        _figures.TryGetValue((backend, model), out var figures) ? figures : Prior;

    public bool HasMeasured(int backend, string model) => _figures.ContainsKey((backend, model));

    private Figures Prior => new(_prior.TimeToFirstToken.TotalMilliseconds, _prior.TokensPerSecond, _prior.OutputTokens);

    public void Record(int backend, string model, TimeSpan timeToFirstToken, TimeSpan generating, int outputTokens)
    {
        var key = (backend, model);
        bool measured = _figures.TryGetValue(key, out var current);
        double ttft = timeToFirstToken.TotalMilliseconds;
        // A one-token answer says nothing about speed; keep the old figure.
        double? tps = outputTokens > 1 && generating > TimeSpan.Zero ? (outputTokens - 1) / generating.TotalSeconds : null;
        if (!measured)
        {
            _figures[key] = new Figures(ttft, tps ?? _prior.TokensPerSecond, outputTokens);
            return;
        }

        _figures[key] = new Figures(
            Blend(current.TimeToFirstTokenMs, ttft),
            tps is { } measuredTps ? Blend(current.TokensPerSecond, measuredTps) : current.TokensPerSecond,
            Blend(current.OutputTokens, outputTokens));
    }

    private double Blend(double old, double sample) => old + (_alpha * (sample - old));

    internal readonly record struct Figures(double TimeToFirstTokenMs, double TokensPerSecond, double OutputTokens)
    {
        public double ServiceMs(double outputTokens) => TimeToFirstTokenMs + (1000 * outputTokens / TokensPerSecond);
    }
}
