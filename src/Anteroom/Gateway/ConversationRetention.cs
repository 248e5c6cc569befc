using Anteroom.Configuration;
using Anteroom.Storage;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>
/// Deletes conversations not changed for <see cref="ConversationOptions.RetainDays"/>, with their messages, at start
/// and then hourly; does nothing when it is unset. With a shared database every gateway sweeps, which is harmless:
/// a sweep deletes what is due, and a second finds nothing left.
/// </summary>
internal sealed partial class ConversationRetention(
    IConversationStore conversations, IOptions<AnteroomOptions> options, TimeProvider time, ILogger<ConversationRetention> log)
    : BackgroundService
{
    /// <summary>How often the sweep runs.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.Conversations.RetainDays is not { } days)
        {
            return;
        }

        var retain = TimeSpan.FromDays(days);
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                int forgotten = await conversations.ForgetConversationsBeforeAsync(time.GetUtcNow() - retain, stoppingToken);
                if (forgotten > 0)
                {
                    LogForgotten(forgotten, days);
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                // An unreachable or busy database now says nothing about the next hour.
                LogFailed(exception);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted {Count} conversations unchanged for {Days} days")]
    private partial void LogForgotten(int count, int days);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deleting old conversations failed; trying again in an hour")]
    private partial void LogFailed(Exception exception);
}
