using System.Globalization;
using Anteroom.Configuration;
using Anteroom.Admin;
using Anteroom.DropIn;
using Anteroom.Identity;
using Anteroom.Limits;
using Anteroom.Native;
using Anteroom.Requests;
using Anteroom.Scheduling;
using Anteroom.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;

namespace Anteroom.Gateway;

/// <summary>Wires the gateway: configuration, the scheduler, backends, requests and endpoints.</summary>
internal static partial class GatewayComposition
{
    /// <summary>Where the gateway listens unless <c>--urls</c> (or <c>ASPNETCORE_URLS</c>) says otherwise.</summary>
    internal const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>Registers the gateway's services; starts the embedded simulator when no backend is configured.</summary>
    public static void AddAnteroom(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (string.IsNullOrEmpty(configuration["urls"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.AddEmbeddedSimulatorWithoutBackends();

        var services = builder.Services;
        var bodyLimit = configuration.GetValue<long?>($"{AnteroomOptions.Section}:MaxRequestBodyBytes") ?? new AnteroomOptions().MaxRequestBodyBytes;
        var connectionLimit = configuration.GetValue<long?>($"{AnteroomOptions.Section}:MaxConnections");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = bodyLimit;
            kestrel.Limits.MaxConcurrentConnections = connectionLimit;
        });
        AddState(builder);
        bool redisMode = !string.IsNullOrWhiteSpace(configuration[$"{AnteroomOptions.Section}:Redis:Configuration"]);

        services.AddOptions<AnteroomOptions>().Bind(configuration.GetSection(AnteroomOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AnteroomOptions>, AnteroomOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(CreateRequestQueue);
        services.AddSingleton<BackendPool>();
        services.AddSingleton<IBackendPool>(provider => provider.GetRequiredService<BackendPool>());
        services.AddSingleton(provider => new BackendsView(
            provider.GetRequiredService<IOptions<AnteroomOptions>>(), provider.GetService<EmbeddedSimulator>()));
        if (redisMode)
        {
            services.ShareStateInRedis();
        }
        else
        {
            services.AddSingleton<IRequestRegistry, InProcessRequestRegistry>();
            services.AddSingleton<IEventLogFactory, InProcessEventLogFactory>();
            services.AddSingleton<IRateLimiter, InProcessRateLimiter>();
        }

        services.AddSingleton<GenerationRunner>();
        services.AddSingleton<RequestSettlement>();
        services.AddSingleton<AdmissionPolicy>();
        services.AddSingleton<RequestLife>();
        services.AddSingleton<RequestAccessLog>();
        services.AddSingleton<Reception>();
        services.AddSingleton<RemoteRequests>();
        services.AddSingleton<Draining>();
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton<IRequestMetrics>(provider => provider.GetRequiredService<GatewayMetrics>());
        services.AddSingleton<DropInDesk>();
        services.AddSingleton<BrowserSessions>();
        services.AddSingleton<SignedOutSessions>();
        services.AddSingleton<Authenticator>();
        services.AddCors();
        services.AddHostedService<BackendHealthProbe>();
        services.AddHostedService<RequestSweeper>();
        services.AddHostedService<QueueSampler>();
        services.AddHostedService<RequestLogRetention>();
        services.AddHostedService<ConversationRetention>();
        // A stop drains first: it acts before any service stops (see GatewayDrain), and the host waits for it.
        services.AddHostedService<GatewayDrain>();
        services.Configure<HostOptions>(host => host.ShutdownTimeout = GatewayDrain.ShutdownTimeout(
            configuration.GetValue<double?>($"{AnteroomOptions.Section}:Shutdown:DrainSeconds") ?? new ShutdownOptions().DrainSeconds));
        // Last, so it stops first: shutdown waits here for the running requests to end and be recorded while every
        // other service (the request log, the backends' health) is still up.
        services.AddHostedService(provider => provider.GetRequiredService<RequestLife>());
    }

    /// <summary>Maps the endpoints and the chat page, and announces where Anteroom listens.</summary>
    public static void MapAnteroom(this WebApplication app)
    {
        // First, so whatever follows — the host check, static files, the access gate, routing's own 404 and 405 —
        // answers errors in the shape of the API that was called.
        app.UseMiddleware<ErrorShapes>();
        // Then: a request for a name Anteroom does not answer to gets nothing else, not even a page.
        app.UseMiddleware<HostGate>();
        var webRoot = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        if (Directory.Exists(webRoot))
        {
            app.UseStaticFiles(new StaticFileOptions { FileProvider = new PhysicalFileProvider(webRoot) });
        }

        // The root is both the chat page and Ollama's "is it running" probe: browsers ask for HTML, clients do not.
        string chatPage = Path.Combine(webRoot, "index.html");
        app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, Authenticator authenticator, BrowserSessions sessions) =>
        {
            if (!context.Request.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase) || !File.Exists(chatPage))
            {
                return OllamaEndpoints.Root();
            }

            // A page refused a session still loads: it asks GET /session next and shows why.
            if (!authenticator.RequiresKeys)
            {
                sessions.Ensure(context);
            }

            return Results.File(chatPage, "text/html; charset=utf-8");
        }).WithAccess(Access.Public);

        var options = app.Services.GetRequiredService<IOptions<AnteroomOptions>>().Value;
        if (options.Cors.Origins.Count > 0)
        {
            app.UseCors(policy => policy
                .WithOrigins([.. options.Cors.Origins])
                .AllowAnyHeader()
                .AllowAnyMethod()
                .AllowCredentials()
                .WithExposedHeaders("Retry-After", "retry-after-ms", "X-Request-Id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"));
        }

        app.UseMiddleware<AccessGate>();
        app.MapHealth();
        app.MapSession();
        app.MapAdminApi();
        app.MapNativeApi();
        app.MapOpenAIApi();
        app.MapOllamaApi();

        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Anteroom");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            foreach (var address in addresses)
            {
                LogListening(log, address.TrimEnd('/') + "/");
                if (options.Auth.RequiresKeys() && IsPlainHttpBeyondThisMachine(address))
                {
                    LogKeysOverPlainHttp(log, address.TrimEnd('/') + "/");
                }
            }

            if (app.Services.GetService<EmbeddedSimulator>() is { } simulator)
            {
                LogSimulated(log, simulator.Address.ToString());
            }
        });
    }

    /// <summary>
    /// With no backend configured, configures the embedded simulator as the only backend (started with the host). The
    /// configuration then names it, so it is validated as any backend is; a second call finds it and does nothing.
    /// </summary>
    public static void AddEmbeddedSimulatorWithoutBackends(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (configuration.GetSection($"{AnteroomOptions.Section}:Backends").GetChildren().Any())
        {
            return;
        }

        var simulator = EmbeddedSimulator.OnFreeLoopbackPort();
        var simulatorOptions = simulator.Options;
        var settings = new Dictionary<string, string?>
        {
            [$"{AnteroomOptions.Section}:Backends:0:Name"] = EmbeddedSimulator.BackendName,
            [$"{AnteroomOptions.Section}:Backends:0:Url"] = simulator.Address.ToString(),
            [$"{AnteroomOptions.Section}:Backends:0:Protocol"] = "ollama",
            [$"{AnteroomOptions.Section}:Backends:0:Slots"] = simulatorOptions.Parallel.ToString(CultureInfo.InvariantCulture),
        };
        // Start the estimates where the simulator really is, so the first positions already carry honest
        // waits; an operator's own Estimates settings still win.
        void Assume(string name, double value)
        {
            string key = $"{AnteroomOptions.Section}:Estimates:{name}";
            if (string.IsNullOrEmpty(configuration[key]))
            {
                settings[key] = value.ToString(CultureInfo.InvariantCulture);
            }
        }

        Assume("TimeToFirstTokenMs", simulatorOptions.TtftMs);
        Assume("TokensPerSecond", simulatorOptions.TokensPerSecond);
        Assume("OutputTokens", simulatorOptions.OutputTokens);

        for (int i = 0; i < simulatorOptions.Models.Count; i++)
        {
            settings[$"{AnteroomOptions.Section}:Backends:0:Models:{i}"] = simulatorOptions.Models[i];
        }

        configuration.AddInMemoryCollection(settings);
        // First among the hosted services: it must answer before the health probe asks.
        builder.Services.AddSingleton(simulator);
        builder.Services.AddHostedService(provider => provider.GetRequiredService<EmbeddedSimulator>());
    }

    /// <summary>
    /// The data directory: the SQLite database (keys, conversations, request log), unless a PostgreSQL database is
    /// configured, and the keys that protect cookies, generated there on first run so no secret ships with Anteroom.
    /// </summary>
    private static void AddState(WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var options = new AnteroomOptions();
        builder.Configuration.GetSection(AnteroomOptions.Section).Bind(options);
        string directory = DataDirectory.Prepare(options.DataDirectory());
        var protection = services.AddDataProtection().SetApplicationName("anteroom");
        if (options.Redis.Enabled)
        {
            // Shared by every replica, so a cookie issued by one is read by all (RedisMode moves the keys there).
            services.AddRedisMode(options.Redis);
        }
        else
        {
            protection.PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(directory, "protection-keys")));
        }

        if (!string.IsNullOrWhiteSpace(options.Storage.Postgres))
        {
            // Several gateways on one database: every store is the shared PostgreSQL one. Opened synchronously because
            // service factories are; it runs once, before the host starts serving.
            string connectionString = options.Storage.Postgres;
            services.AddSingleton<IStore>(provider => PostgresStore.OpenAsync(
                connectionString, provider.GetRequiredService<TimeProvider>(), StorageLog(provider)).GetAwaiter().GetResult());
        }
        else
        {
            services.AddSingleton<IStore>(provider => SqliteStore.Open(
                DataDirectory.DatabasePath(directory), provider.GetRequiredService<TimeProvider>(), StorageLog(provider)));
        }

        services.AddSingleton<IKeyStore>(provider => new CachedKeyStore(
            provider.GetRequiredService<IStore>(),
            TimeSpan.FromMilliseconds(provider.GetRequiredService<IOptions<AnteroomOptions>>().Value.Auth.KeyCacheMilliseconds),
            provider.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ISessionStore>(provider => provider.GetRequiredService<IStore>());
        services.AddSingleton<IConversationStore>(provider => provider.GetRequiredService<IStore>());
        services.AddSingleton<IRequestLog>(provider => provider.GetRequiredService<IStore>());
    }

    private static ILogger StorageLog(IServiceProvider provider) =>
        provider.GetRequiredService<ILoggerFactory>().CreateLogger("Anteroom.Storage");

    /// <summary>
    /// Plain http that other machines can reach: keys travel in the clear, and cookies go out without Secure — also
    /// behind a TLS proxy that does not forward the scheme, since Anteroom then believes the page is http.
    /// </summary>
    private static bool IsPlainHttpBeyondThisMachine(string address)
    {
        if (!address.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Wildcards such as http://*:8080 or http://+:8080 are no URI, and listen everywhere.
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
        {
            return true;
        }

        return !uri.IsLoopback && !string.Equals(uri.Host, "localhost", StringComparison.OrdinalIgnoreCase);
    }

    private static IRequestQueue CreateRequestQueue(IServiceProvider provider)
    {
        var options = provider.GetRequiredService<IOptions<AnteroomOptions>>().Value;
        var queue = options.Queue;
        var schedulerOptions = new SchedulerOptions
        {
            Policy = queue.ParsedPolicy(),
            MaxQueueLength = queue.MaxQueueLength,
            MaxWaitingPerUser = queue.MaxWaitingPerUser,
            MaxInFlightPerUser = queue.MaxInFlightPerUser,
            MaxWait = TimeSpan.FromSeconds(queue.MaxWaitSeconds),
            MaxDispatchAttempts = queue.MaxDispatchAttempts,
            ChangeCoalescing = TimeSpan.FromMilliseconds(queue.PositionUpdateMilliseconds),
            NoBackendRetryAfter = BackendPool.NoBackendRetryAfter(options.Health),
            Prior = new ServicePrior
            {
                TimeToFirstToken = TimeSpan.FromMilliseconds(options.Estimates.TimeToFirstTokenMs),
                TokensPerSecond = options.Estimates.TokensPerSecond,
                OutputTokens = options.Estimates.OutputTokens,
            },
        };
        var backends = options.Backends.Select(b => new BackendDefinition(b.Name!, b.Slots, b.Models));
        var time = provider.GetRequiredService<TimeProvider>();
        return options.Redis.Enabled
            ? RedisMode.CreateRequestQueue(provider, options.Redis, schedulerOptions, backends, time)
            : RequestQueue.CreateInProcess(schedulerOptions, backends, time);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Anteroom is listening: open {Url} for the chat page")]
    private static partial void LogListening(ILogger logger, string url);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Auth:Mode is 'keys' but Anteroom listens on plain http at {Url}, which other machines can reach: API keys and the browser's key cookie cross the network unencrypted, and cookies are sent without Secure. Serve https, or put a TLS proxy in front and set ASPNETCORE_FORWARDEDHEADERS_ENABLED=true so Anteroom knows the page is https.")]
    private static partial void LogKeysOverPlainHttp(ILogger logger, string url);

    [LoggerMessage(Level = LogLevel.Warning, Message = "NO BACKEND IS CONFIGURED: answers come from the built-in model-server SIMULATOR at {Url}, not from a real model. Configure Anteroom:Backends to serve real models.")]
    private static partial void LogSimulated(ILogger logger, string url);
}
