using Anteroom.Requests;
using Anteroom.Storage;
using Microsoft.Extensions.Logging;

namespace Anteroom.Tests;

public sealed class ShutdownTests
{
    private static CancellationToken Within30Seconds() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    /// <summary>
    /// A request that no connection holds (its client left within its reconnect grace) is stopped when the host
    /// stops, and the stop waits until it has ended and its log entry is written. To show the waiting and not a
    /// lucky race, the request's access-log line is held until the host says it is waiting for running requests:
    /// a host that did not wait would finish stopping with the request still unended, and its entry unwritten.
    /// </summary>
    [Fact]
    public async Task HostStop_WithARequestRunning_WaitsUntilTheRequestHasEnded_AndItsLogEntryIsWritten()
    {
        var ct = Within30Seconds();
        string directory = TestGateway.NewDataDirectory();
        var logs = new HeldAccessLine();
        try
        {
            var gateway = await TestGateway.StartAsync(
                [new TestBackend("gpu", TestGateway.FastSimulator())],
                new Dictionary<string, string?>
                {
                    ["Anteroom:Data:Directory"] = directory,
                    ["Logging:LogLevel:Anteroom.Requests"] = "Information",
                },
                logs);
            LiveRequest request;
            try
            {
                gateway.Simulator("gpu").Hold();
                using (var stream = await SseStream.ChatAsync(gateway.Client("a"), new { message = "hi", reconnect_grace_ms = 60_000 }, ct))
                {
                    await stream.ReadUntilAsync(ct, "started");
                    request = (await gateway.Registry.GetAsync(stream.RequestId, ct))!;
                }

                logs.Hold(request.Id);
            }
            finally
            {
                await gateway.DisposeAsync();
            }

            Assert.True(request.Ended.IsCompleted, "the host finished stopping before the running request had ended");
            // Stopped by the stop, not by anyone who asked: failed, and worth sending again.
            Assert.Equal("error", (await request.Ended).Name);

            await using var store = SqliteStore.Open(DataDirectory.DatabasePath(directory), TimeProvider.System);
            var entries = await store.ReadRequestsAsync(DateTimeOffset.UnixEpoch, DateTimeOffset.UtcNow.AddHours(1), null, 10, ct);
            var entry = Assert.Single(entries, e => e.RequestId == request.Id);
            Assert.Equal(("failed", "server_shutting_down"), (entry.Outcome, entry.Reason));
        }
        finally
        {
            logs.Release();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// Holds the thread that writes one request's access-log line until the host logs that it waits for running
    /// requests (or until <see cref="Release"/>).
    /// </summary>
    private sealed class HeldAccessLine : ILoggerProvider
    {
        private readonly ManualResetEventSlim _released = new();
        private volatile string? _heldId;

        public void Hold(string requestId) => _heldId = requestId;

        public void Release() => _released.Set();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(HeldAccessLine owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                string message = formatter(state, exception);
                if (category == "Anteroom.Requests.RequestLife" && message.Contains("waiting for", StringComparison.Ordinal))
                {
                    owner.Release();
                }
                else if (category == RequestAccessLog.Category && owner._heldId is { } id && message.Contains(id, StringComparison.Ordinal))
                {
                    owner._released.Wait();
                }
            }
        }
    }
}
