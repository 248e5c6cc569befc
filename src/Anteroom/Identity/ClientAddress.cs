using System.Net;
using System.Net.Sockets;

namespace Anteroom.Identity;

/// <summary>
/// The client address a keyless caller is known by, and the unit its browser sessions are counted in. A client with
/// a global IPv6 address is its /64: a host on the internet is routinely given a whole /64 and can pick any address
/// in it, so counting full addresses would let one machine be 2^64 users. Link-local and unique-local addresses are a
/// LAN's, where every host shares one /64, so each keeps its own. An IPv4-mapped address is its IPv4 address, however
/// the socket reported it.
/// </summary>
internal static class ClientAddress
{
    public const string Unknown = "unknown";

    public static string Of(HttpContext context) => Of(context.Connection.RemoteIpAddress);

    public static string Of(IPAddress? address)
    {
        if (address is null)
        {
            return Unknown;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6 || IPAddress.IsLoopback(address) ||
            address.IsIPv6LinkLocal || address.IsIPv6UniqueLocal || address.IsIPv6SiteLocal)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }
}
