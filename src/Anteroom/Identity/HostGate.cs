using System.Net;
using Anteroom.Configuration;
using Anteroom.Gateway;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace Anteroom.Identity;

/// <summary>
/// The names Anteroom answers to. A DNS-rebinding page — served from <c>evil.example</c>, whose name is then
/// pointed at Anteroom's address — is same-origin with itself, so no origin check can tell it apart; only its
/// <c>Host</c> header gives it away. Always allowed: IP addresses (rebinding needs a name the attacker resolves)
/// and <c>localhost</c>; by default also the names Anteroom was told to listen on and this machine's own name;
/// and whatever the operator lists in <see cref="AnteroomOptions.AllowedHosts"/> (<c>*</c> for any,
/// <c>*.example.com</c> for its subdomains).
/// </summary>
internal sealed class HostAllowList
{
    private readonly bool _any;
    private readonly HashSet<string> _names = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _suffixes = [];

    public HostAllowList(IEnumerable<string> configured, IEnumerable<string> listeningUrls)
    {
        foreach (string entry in configured)
        {
            string name = Normalize(entry);
            if (name == "*")
            {
                _any = true;
            }
            else if (name.StartsWith("*.", StringComparison.Ordinal))
            {
                _suffixes.Add(name[1..]);
            }
            else
            {
                _names.Add(name);
            }
        }

        foreach (string url in listeningUrls)
        {
            if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.HostNameType == UriHostNameType.Dns)
            {
                _names.Add(Normalize(uri.Host));
            }
        }

        _names.Add(Normalize(Dns.GetHostName()));
    }

    /// <summary>Whether a request naming <paramref name="host"/> (without its port) is for this Anteroom.</summary>
    public bool Allows(string host)
    {
        // HTTP/1.0 may leave Host out; a browser never does.
        if (_any || host.Length == 0)
        {
            return true;
        }

        string name = Normalize(host);
        if (IPAddress.TryParse(name.Trim('[', ']'), out _) ||
            name == "localhost" || name.EndsWith(".localhost", StringComparison.Ordinal) || _names.Contains(name))
        {
            return true;
        }

        foreach (string suffix in _suffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && name.Length > suffix.Length)
            {
                return true;
            }
        }

        return false;
    }

    // A fully qualified name's trailing dot names the same host.
    private static string Normalize(string host) => host.Trim().TrimEnd('.').ToLowerInvariant();
}

/// <summary>
/// Refuses requests for host names Anteroom does not answer to, before anything else sees them — pages and their
/// files included — with 421 Misdirected Request: the request reached a server that does not serve that name, which
/// is exactly the case, and unlike a bare 400 it does not suggest the request itself was malformed.
/// </summary>
internal sealed class HostGate(RequestDelegate next, IOptions<AnteroomOptions> options, IServer server, IConfiguration configuration)
{
    // The listening addresses are known only once the server has started, which every request comes after.
    private readonly Lazy<HostAllowList> _allowed = new(() => new HostAllowList(
        options.Value.AllowedHosts,
        [
            .. (configuration["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            .. server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [],
        ]));

    public Task InvokeAsync(HttpContext context)
    {
        string host = context.Request.Host.Host;
        if (_allowed.Value.Allows(host))
        {
            return next(context);
        }

        return ApiSurfaces.Error(ApiSurfaces.Of(context.Request), StatusCodes.Status421MisdirectedRequest, "host_not_allowed",
            $"This Anteroom does not answer to the host name '{host}'. If that is its name, the operator can allow it in Anteroom:AllowedHosts.")
            .ExecuteAsync(context);
    }
}
