using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Anteroom.Simulator.Http;

/// <summary>
/// Ends a response the way a server that dies mid-stream does, without losing what it sent: the sending side of
/// the connection shuts, so the client reads every byte already sent and then an unexpected end.
/// <see cref="HttpContext.Abort"/> alone resets the connection (on Linux a socket closed while a receive is
/// pending is reset), and a reset makes the client's kernel discard whatever the client has not read yet.
/// </summary>
internal static class HalfClose
{
    private static readonly object SocketKey = new();

    /// <summary>Remembers each connection's socket, so that a request can reach it.</summary>
    public static void Install(ListenOptions listen) => listen.Use(next => connection =>
    {
        if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
            connection.Items[SocketKey] = socket;
        return next(connection);
    });

    /// <summary>Shuts the sending side; false when no socket is reachable, and the caller must abort instead.</summary>
    public static bool TryShutDownSending(HttpContext http)
    {
        if (http.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(SocketKey, out var value) != true || value is not Socket socket)
            return false;
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            return true;
        }
        catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }
}
