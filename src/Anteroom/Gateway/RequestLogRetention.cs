using Anteroom.Configuration;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>Deletes request log entries older than <see cref="DataOptions.RequestLogRetainDays"/>, at start and then hourly.</summary>
internal sealed partial class RequestLogRetention(IRequestLog requestLog, IOptions<AnteroomOptions> options, TimeProvider time, ILogger<RequestLogRetention> log)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retain = TimeSpan.FromDays(options.Value.Data.RequestLogRetainDays);
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1), time);
        do
        {
            try
            {
                int forgotten = await requestLog.ForgetRequestsBeforeAsync(time.GetUtcNow() - retain, stoppingToken);
                if (forgotten > 0)
                {
                    LogForgotten(forgotten, options.Value.Data.RequestLogRetainDays);
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                // A busy or full disk now says nothing about the next hour.
                LogFailed(exception);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted {Count} request log entries older than {Days} days")]
    private partial void LogForgotten(int count, int days);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deleting old request log entries failed; trying again in an hour")]
    private partial void LogFailed(Exception exception);
}
