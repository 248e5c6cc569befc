using System.Net;
using Anteroom.Identity;

namespace Anteroom.Tests.Access;

public sealed class ClientAddressTests
{
    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7")]
    [InlineData("::1", "::1")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::1", "2001:db8:1:3::/64")]
    [InlineData("fe80::1:2:3:4", "fe80::1:2:3:4")]
    [InlineData("fd12:3456:789a:1::5", "fd12:3456:789a:1::5")]
    public void Of_GivesIPv4AsItIs_GlobalIPv6AsItsSlash64_AndLanIPv6AsItIs(string address, string expected) =>
        Assert.Equal(expected, ClientAddress.Of(IPAddress.Parse(address)));

    [Fact]
    public void Of_NoAddress_IsUnknown() => Assert.Equal(ClientAddress.Unknown, ClientAddress.Of((IPAddress?)null));
}
