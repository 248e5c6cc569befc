using Anteroom.Backends;

namespace Anteroom.Requests;

/// <summary>
/// A compact binary form of <see cref="RequestEvent"/>, for event logs kept outside the process (a Redis stream):
/// a tag byte, then the fields in declaration order — integers 7-bit encoded, strings length-prefixed UTF-8, a
/// nullable value after a presence byte. A token costs its text and two or three bytes.
/// </summary>
/// <remarks>
/// Binary rather than JSON: a token is the commonest event by far, and its JSON would be several times the size of
/// its text once escaped and named. The tags are part of the stored format: a new event type takes a new tag, and
/// an existing tag's fields may only be appended to.
/// </remarks>
internal static class RequestEventCodec
{
    private const byte QueuedTag = 1;
    private const byte StartedTag = 2;
    private const byte TokenTag = 3;
    private const byte RelayedTag = 4;
    private const byte DoneTag = 5;
    private const byte ErrorTag = 6;
    private const byte CancelledTag = 7;

    /// <summary>Encodes <paramref name="requestEvent"/>, reusing <paramref name="buffer"/> (which it clears) for the work.</summary>
    public static byte[] Encode(RequestEvent requestEvent, MemoryStream buffer)
    {
        buffer.SetLength(0);
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            Write(writer, requestEvent);
        }

        return buffer.ToArray();
    }

    public static byte[] Encode(RequestEvent requestEvent) => Encode(requestEvent, new MemoryStream());

    /// <summary>Decodes what <see cref="Encode(RequestEvent)"/> wrote; throws <see cref="FormatException"/> on anything else.</summary>
    public static RequestEvent Decode(byte[] bytes)
    {
        try
        {
            using var reader = new BinaryReader(new MemoryStream(bytes, writable: false), System.Text.Encoding.UTF8);
            var decoded = Read(reader);
            if (reader.BaseStream.Position != bytes.Length)
            {
                throw new FormatException("An encoded request event has bytes left over.");
            }

            return decoded;
        }
        catch (EndOfStreamException e)
        {
            throw new FormatException("An encoded request event is cut short.", e);
        }
    }

    private static void Write(BinaryWriter writer, RequestEvent requestEvent)
    {
        switch (requestEvent)
        {
            case RequestEvent.Queued queued:
                writer.Write(QueuedTag);
                writer.Write(queued.RequestId);
                writer.Write7BitEncodedInt(queued.Position);
                writer.Write7BitEncodedInt(queued.QueueLength);
                writer.Write7BitEncodedInt64(queued.EtaMs);
                break;
            case RequestEvent.Started started:
                writer.Write(StartedTag);
                writer.Write(started.RequestId);
                writer.Write(started.Backend);
                writer.Write(started.Model);
                writer.Write7BitEncodedInt64(started.WaitedMs);
                writer.Write7BitEncodedInt(started.Attempt);
                break;
            case RequestEvent.Token token:
                writer.Write(TokenTag);
                writer.Write(token.Text);
                break;
            case RequestEvent.Relayed relayed:
                writer.Write(RelayedTag);
                writer.Write7BitEncodedInt(relayed.Bytes.Length);
                writer.Write(relayed.Bytes);
                break;
            case RequestEvent.Done done:
                writer.Write(DoneTag);
                writer.Write(done.FinishReason);
                writer.Write7BitEncodedInt(done.Usage.PromptTokens);
                writer.Write7BitEncodedInt(done.Usage.CompletionTokens);
                writer.Write7BitEncodedInt64(done.Timings.WaitedMs);
                WriteOptional(writer, done.Timings.TimeToFirstTokenMs);
                writer.Write7BitEncodedInt64(done.Timings.GenerationMs);
                writer.Write7BitEncodedInt64(done.Timings.TotalMs);
                writer.Write(done.Timings.TokensPerSecond.HasValue);
                if (done.Timings.TokensPerSecond is { } perSecond)
                {
                    writer.Write(perSecond);
                }

                break;
            case RequestEvent.Error error:
                writer.Write(ErrorTag);
                writer.Write(error.Code);
                writer.Write(error.Message);
                WriteOptional(writer, error.RetryAfterMs);
                break;
            case RequestEvent.Cancelled cancelled:
                writer.Write(CancelledTag);
                writer.Write(cancelled.Reason);
                break;
            default:
                throw new ArgumentException($"No encoding for the event '{requestEvent.Name}'.", nameof(requestEvent));
        }
    }

    private static RequestEvent Read(BinaryReader reader)
    {
        byte tag = reader.ReadByte();
        return tag switch
        {
            QueuedTag => new RequestEvent.Queued(reader.ReadString(), reader.Read7BitEncodedInt(), reader.Read7BitEncodedInt(), reader.Read7BitEncodedInt64()),
            StartedTag => new RequestEvent.Started(
                reader.ReadString(), reader.ReadString(), reader.ReadString(), reader.Read7BitEncodedInt64(), reader.Read7BitEncodedInt()),
            TokenTag => new RequestEvent.Token(reader.ReadString()),
            RelayedTag => new RequestEvent.Relayed(ReadBytes(reader)),
            DoneTag => new RequestEvent.Done(
                reader.ReadString(),
                new GenerationUsage(reader.Read7BitEncodedInt(), reader.Read7BitEncodedInt()),
                new TimingsBody(
                    reader.Read7BitEncodedInt64(),
                    ReadOptional(reader),
                    reader.Read7BitEncodedInt64(),
                    reader.Read7BitEncodedInt64(),
                    reader.ReadBoolean() ? reader.ReadDouble() : null)),
            ErrorTag => new RequestEvent.Error(reader.ReadString(), reader.ReadString(), ReadOptional(reader)),
            CancelledTag => new RequestEvent.Cancelled(reader.ReadString()),
            _ => throw new FormatException($"Unknown request event tag {tag}."),
        };
    }

    private static byte[] ReadBytes(BinaryReader reader)
    {
        int length = reader.Read7BitEncodedInt();
        var bytes = reader.ReadBytes(length);
        return bytes.Length == length ? bytes : throw new EndOfStreamException();
    }

    private static void WriteOptional(BinaryWriter writer, long? value)
    {
        writer.Write(value.HasValue);
        if (value is { } present)
        {
            writer.Write7BitEncodedInt64(present);
        }
    }

    private static long? ReadOptional(BinaryReader reader) => reader.ReadBoolean() ? reader.Read7BitEncodedInt64() : null;
}
