using System.Text;
using Anteroom.Backends.Http;

namespace Anteroom.Backends.Tests.Http;

public sealed class BackendErrorTextTests
{
    [Theory]
    [InlineData("""{"error":"model 'x' not found"}""", "model 'x' not found")]
    [InlineData("""{"error":{"message":"bad request","type":"invalid_request_error"}}""", "bad request")]
    [InlineData("""{"object":"error","message":"no such model","code":404}""", "no such model")]
    [InlineData("""{"detail":"Not Found"}""", "Not Found")]
    [InlineData("""{"error":{"code":7}}""", """{"code":7}""")]
    [InlineData("  upstream timed out \n", "upstream timed out")]
    [InlineData("{not json", "{not json")]
    public void FromBody_KnownShapes_FindTheMessage(string body, string expected)
    {
        Assert.Equal(expected, BackendErrorText.FromBody(Encoding.UTF8.GetBytes(body)));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" \r\n")]
    public void FromBody_EmptyBody_IsNull(string body)
    {
        Assert.Null(BackendErrorText.FromBody(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public void FromBody_HugeBody_IsCut()
    {
        var message = BackendErrorText.FromBody(Encoding.UTF8.GetBytes(new string('x', 10_000)));

        Assert.Equal(501, message!.Length);
        Assert.EndsWith("…", message);
    }
}
