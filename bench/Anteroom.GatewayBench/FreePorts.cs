using System.Net;
using System.Net.Sockets;

namespace Anteroom.GatewayBench;

/// <summary>Prints free loopback ports, all held at once while chosen so that they differ.</summary>
internal static class FreePorts
{
    public static int Print(Arguments arguments)
    {
        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < arguments.Number("count", 1); i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                Console.WriteLine(((IPEndPoint)socket.LocalEndPoint!).Port);
            }
        }
        finally
        {
            sockets.ForEach(socket => socket.Dispose());
        }

        return 0;
    }
}
