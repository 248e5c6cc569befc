using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Anteroom.GatewayBench;

/// <summary>
/// Starts streaming chat completions at a fixed rate (at most <c>--concurrency</c> at once) for <c>--seconds</c>,
/// reads every line as it arrives and, for each stamped token (see <see cref="StampedUpstream"/>), records how long
/// it took from the upstream's write to this read. Prints one line of <c>key=value</c> results.
/// </summary>
internal static class StreamClient
{
    public static async Task<int> RunAsync(Arguments arguments)
    {
        var url = new Uri(arguments.Text("url"));
        string model = arguments.Text("model");
        double rate = arguments.Real("rate", 50);
        int concurrency = arguments.Number("concurrency", 10);
        int expected = arguments.Number("tokens", 100);
        var duration = TimeSpan.FromSeconds(arguments.Real("seconds", 5));

        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency }) { Timeout = TimeSpan.FromSeconds(30) };
        byte[] body = Encoding.UTF8.GetBytes($$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":"Stream please."}]}""");
        var results = new Results();
        var slots = new SemaphoreSlim(concurrency);
        var running = new List<Task>();
        var started = Stopwatch.StartNew();
        using var ticks = new PeriodicTimer(TimeSpan.FromSeconds(1 / rate));
        while (started.Elapsed < duration)
        {
            await slots.WaitAsync();
            running.Add(RunOneAsync(client, url, body, expected, results, slots));
            await ticks.WaitForNextTickAsync();
        }

        await Task.WhenAll(running);
        double seconds = started.Elapsed.TotalSeconds;
        var delays = results.Delays;
        delays.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"streams={results.Streams} tokens={delays.Count} errors={results.Errors} incomplete={results.Incomplete} streams_per_s={results.Streams / seconds:0.0} " +
            $"delay_p50_us={Percentile(delays, 0.50):0} delay_p90_us={Percentile(delays, 0.90):0} delay_p99_us={Percentile(delays, 0.99):0} clock_hz={Stopwatch.Frequency}"));
        return 0;
    }

    private static async Task RunOneAsync(HttpClient client, Uri url, byte[] body, int expected, Results results, SemaphoreSlim slots)
    {
        var delays = new List<double>(expected);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new("application/json");
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
            {
                results.Failed();
                return;
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                long now = Stopwatch.GetTimestamp();
                if (Stamp(line) is { } stamp)
                {
                    delays.Add((now - stamp) * 1e6 / Stopwatch.Frequency);
                }
            }

            results.Finished(delays, complete: delays.Count == expected);
        }
        catch (Exception exception) when (exception is HttpRequestException or IOException or TaskCanceledException)
        {
            results.Failed();
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>The timestamp in <c>ts{N}z</c> within the line, if there is one.</summary>
    private static long? Stamp(string line)
    {
        int at = line.IndexOf(StampedUpstream.StampPrefix, StringComparison.Ordinal);
        while (at >= 0)
        {
            int start = at + StampedUpstream.StampPrefix.Length;
            int end = start;
            while (end < line.Length && char.IsAsciiDigit(line[end]))
            {
                end++;
            }

            if (end > start && end < line.Length && line[end] == StampedUpstream.StampEnd)
            {
                return long.Parse(line.AsSpan(start, end - start), CultureInfo.InvariantCulture);
            }

            at = line.IndexOf(StampedUpstream.StampPrefix, end, StringComparison.Ordinal);
        }

        return null;
    }

    private static double Percentile(List<double> sorted, double share) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(share * sorted.Count) - 1)];

    private sealed class Results
    {
        private readonly Lock _gate = new();

        public List<double> Delays { get; } = [];

        public int Streams { get; private set; }

        public int Errors { get; private set; }

        public int Incomplete { get; private set; }

        public void Finished(List<double> delays, bool complete)
        {
            lock (_gate)
            {
                Streams++;
                Delays.AddRange(delays);
                Incomplete += complete ? 0 : 1;
            }
        }

        public void Failed()
        {
            lock (_gate)
            {
                Errors++;
            }
        }
    }
}
