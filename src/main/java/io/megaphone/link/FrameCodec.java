// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.nio.charset.StandardCharsets;

/**
 * Encodes and decodes the frames of docs/protocol.md. Decoding takes one whole frame (the bytes after the
 * 4-byte length, which {@link LinkFrameDecoder} has already split off) and throws
 * {@link MalformedFrameException} for anything the spec does not allow; encoding writes the length prefix too.
 */
public final class FrameCodec {

    static final byte[] MAGIC = {'M', 'G', 'P', 'H'};
    static final int NONCE_BYTES = 32;
    static final int MAC_BYTES = 32;
    /** The longest STREAM_CLOSE reason: what fits a WebSocket close frame's payload (125 bytes less the code). */
    static final int MAX_CLOSE_REASON = 123;

    private FrameCodec() {
    }

    /** Decodes one frame: {@code type u8 | payload}. */
    public static Frame decode(ByteBuf in) {
        if (!in.isReadable()) {
            throw new MalformedFrameException("empty frame (expected: at least a type byte)");
        }
        byte type = in.readByte();
        try {
            Frame frame = switch (type) {
                case FrameType.HELLO -> decodeHello(in);
                case FrameType.AUTH -> new Frame.Auth(in.readUnsignedByte(), bytes(in, NONCE_BYTES),
                        bytes(in, MAC_BYTES), string8(in));
                case FrameType.WELCOME -> decodeWelcome(in);
                case FrameType.REQUEST -> new Frame.Request(in.readInt(), envelope(in));
                case FrameType.RESPONSE -> new Frame.Response(in.readInt(), in.readUnsignedShort(), string8(in),
                        bytes(in, in.readableBytes()));
                case FrameType.CANCEL -> new Frame.Cancel(in.readInt());
                case FrameType.PING -> new Frame.Ping(in.readLong());
                case FrameType.PONG -> new Frame.Pong(in.readLong());
                case FrameType.GOAWAY -> new Frame.GoAway(in.readUnsignedShort(), string16(in));
                case FrameType.ERROR -> new Frame.Error(in.readUnsignedShort(), string16(in));
                case FrameType.STREAM_OPEN -> new Frame.StreamOpen(streamId(in), socketAddress(in),
                        in.readUnsignedInt());
                case FrameType.STREAM_OPENED -> new Frame.StreamOpened(streamId(in), in.readUnsignedInt());
                case FrameType.DATA -> new Frame.Data(streamId(in), bytes(in, in.readableBytes()));
                case FrameType.WINDOW -> new Frame.Window(streamId(in), in.readUnsignedInt());
                case FrameType.STREAM_CLOSE -> decodeStreamClose(in);
                default -> throw new MalformedFrameException(
                        String.format("type: 0x%02x (expected: a type of docs/protocol.md)", type));
            };
            if (in.isReadable()) {
                throw new MalformedFrameException(String.format("type 0x%02x: %d bytes after the payload", type,
                        in.readableBytes()));
            }
            return frame;
        } catch (IndexOutOfBoundsException e) {
            throw new MalformedFrameException(String.format("type 0x%02x: payload too short", type));
        }
    }

    private static Frame decodeHello(ByteBuf in) {
        byte[] magic = bytes(in, MAGIC.length);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new MalformedFrameException("hello: bad magic (expected: \"MGPH\")");
        }
        return new Frame.Hello(in.readUnsignedByte(), in.readUnsignedByte(), bytes(in, NONCE_BYTES));
    }

    /** v1: nothing after {@code node}; v2: {@code max_streams u32, stream_window u32} after it. */
    private static Frame decodeWelcome(ByteBuf in) {
        byte[] mac = bytes(in, MAC_BYTES);
        long maxFrame = in.readUnsignedInt();
        long maxInflight = in.readUnsignedInt();
        long heartbeat = in.readUnsignedInt();
        String node = string8(in);
        if (!in.isReadable()) {
            return new Frame.Welcome(mac, maxFrame, maxInflight, heartbeat, node);
        }
        return new Frame.Welcome(mac, maxFrame, maxInflight, heartbeat, node, in.readUnsignedInt(),
                in.readUnsignedInt());
    }

    private static int streamId(ByteBuf in) {
        int id = in.readInt();
        if (id == 0) {
            throw new MalformedFrameException("stream: 0 (expected: a non-zero stream id)");
        }
        return id;
    }

    private static java.net.InetSocketAddress socketAddress(ByteBuf in) {
        int length = in.readUnsignedByte();
        if (length != 4 && length != 16) {
            throw new MalformedFrameException("ip_len: " + length + " (expected: 4 or 16)");
        }
        try {
            java.net.InetAddress ip = java.net.InetAddress.getByAddress(bytes(in, length));
            return new java.net.InetSocketAddress(ip, in.readUnsignedShort());
        } catch (java.net.UnknownHostException e) {
            throw new MalformedFrameException(e.getMessage()); // not reached: the length is checked
        }
    }

    private static Frame decodeStreamClose(ByteBuf in) {
        int stream = streamId(in);
        int code = in.readUnsignedShort();
        int length = in.readUnsignedByte();
        if (length > MAX_CLOSE_REASON) {
            throw new MalformedFrameException("stream_close reason_len: " + length + " (expected: <= "
                    + MAX_CLOSE_REASON + ")");
        }
        return new Frame.StreamClose(stream, code, in.readCharSequence(length, StandardCharsets.UTF_8).toString());
    }

    private static RequestEnvelope envelope(ByteBuf in) {
        try {
            return RequestEnvelope.wrap(bytes(in, in.readableBytes()));
        } catch (IllegalArgumentException e) {
            throw new MalformedFrameException(e.getMessage());
        }
    }

    private static byte[] bytes(ByteBuf in, int length) {
        byte[] out = new byte[length];
        in.readBytes(out);
        return out;
    }

    private static String string8(ByteBuf in) {
        return in.readCharSequence(in.readUnsignedByte(), StandardCharsets.UTF_8).toString();
    }

    private static String string16(ByteBuf in) {
        return in.readCharSequence(in.readUnsignedShort(), StandardCharsets.UTF_8).toString();
    }

    /** Encodes a frame with its length prefix into a new buffer of exactly the right size. */
    public static ByteBuf encode(Frame frame, ByteBufAllocator alloc) {
        if (frame instanceof Frame.Request r) {
            byte[] envelope = r.envelope().bytes();
            return header(alloc, 4 + envelope.length, FrameType.REQUEST).writeInt(r.id()).writeBytes(envelope);
        }
        if (frame instanceof Frame.Response r) {
            byte[] ct = r.contentType().getBytes(StandardCharsets.UTF_8);
            ByteBuf out = header(alloc, 4 + 2 + 1 + ct.length + r.body().length, FrameType.RESPONSE);
            return out.writeInt(r.id()).writeShort(r.status()).writeByte(checked8(ct)).writeBytes(ct)
                    .writeBytes(r.body());
        }
        if (frame instanceof Frame.Cancel c) {
            return header(alloc, 4, FrameType.CANCEL).writeInt(c.id());
        }
        if (frame instanceof Frame.Data d) {
            return header(alloc, 4 + d.payload().length, FrameType.DATA).writeInt(d.stream()).writeBytes(d.payload());
        }
        if (frame instanceof Frame.Window w) {
            return header(alloc, 8, FrameType.WINDOW).writeInt(w.stream()).writeInt((int) w.credit());
        }
        if (frame instanceof Frame.StreamOpen o) {
            byte[] ip = o.client().getAddress().getAddress();
            return header(alloc, 4 + 1 + ip.length + 2 + 4, FrameType.STREAM_OPEN).writeInt(o.stream())
                    .writeByte(ip.length).writeBytes(ip).writeShort(o.client().getPort()).writeInt((int) o.window());
        }
        if (frame instanceof Frame.StreamOpened o) {
            return header(alloc, 8, FrameType.STREAM_OPENED).writeInt(o.stream()).writeInt((int) o.window());
        }
        if (frame instanceof Frame.StreamClose c) {
            byte[] reason = closeReason(c.reason());
            return header(alloc, 4 + 2 + 1 + reason.length, FrameType.STREAM_CLOSE).writeInt(c.stream())
                    .writeShort(c.code()).writeByte(reason.length).writeBytes(reason);
        }
        if (frame instanceof Frame.Ping p) {
            return header(alloc, 8, FrameType.PING).writeLong(p.opaque());
        }
        if (frame instanceof Frame.Pong p) {
            return header(alloc, 8, FrameType.PONG).writeLong(p.opaque());
        }
        if (frame instanceof Frame.GoAway g) {
            return coded(alloc, FrameType.GOAWAY, g.code(), g.reason());
        }
        if (frame instanceof Frame.Error e) {
            return coded(alloc, FrameType.ERROR, e.code(), e.reason());
        }
        if (frame instanceof Frame.Hello h) {
            return header(alloc, 4 + 2 + NONCE_BYTES, FrameType.HELLO).writeBytes(MAGIC)
                    .writeByte(h.minVersion()).writeByte(h.maxVersion()).writeBytes(h.serverNonce());
        }
        if (frame instanceof Frame.Auth a) {
            byte[] name = a.name().getBytes(StandardCharsets.UTF_8);
            ByteBuf out = header(alloc, 1 + NONCE_BYTES + MAC_BYTES + 1 + name.length, FrameType.AUTH);
            return out.writeByte(a.version()).writeBytes(a.clientNonce()).writeBytes(a.mac())
                    .writeByte(checked8(name)).writeBytes(name);
        }
        Frame.Welcome w = (Frame.Welcome) frame;
        byte[] node = w.node().getBytes(StandardCharsets.UTF_8);
        int streamFields = w.hasStreamFields() ? 8 : 0;
        ByteBuf out = header(alloc, MAC_BYTES + 12 + 1 + node.length + streamFields, FrameType.WELCOME);
        out.writeBytes(w.mac()).writeInt((int) w.maxFrame()).writeInt((int) w.maxInflight())
                .writeInt((int) w.heartbeatMillis()).writeByte(checked8(node)).writeBytes(node);
        return w.hasStreamFields() ? out.writeInt((int) w.maxStreams()).writeInt((int) w.streamWindow()) : out;
    }

    /** The reason's UTF-8 bytes, cut to {@link #MAX_CLOSE_REASON} at a character boundary. */
    static byte[] closeReason(String reason) {
        byte[] bytes = reason.getBytes(StandardCharsets.UTF_8);
        if (bytes.length <= MAX_CLOSE_REASON) {
            return bytes;
        }
        int end = MAX_CLOSE_REASON;
        while (end > 0 && (bytes[end] & 0xC0) == 0x80) {
            end--; // do not cut a multi-byte character
        }
        return java.util.Arrays.copyOf(bytes, end);
    }

    private static ByteBuf header(ByteBufAllocator alloc, int payloadLength, byte type) {
        ByteBuf out = alloc.buffer(4 + 1 + payloadLength);
        return out.writeInt(1 + payloadLength).writeByte(type);
    }

    private static ByteBuf coded(ByteBufAllocator alloc, byte type, int code, String reason) {
        byte[] text = reason.getBytes(StandardCharsets.UTF_8);
        int length = Math.min(text.length, 0xFFFF);
        return header(alloc, 2 + 2 + length, type).writeShort(code).writeShort(length).writeBytes(text, 0, length);
    }

    private static int checked8(byte[] field) {
        if (field.length > 255) {
            throw new IllegalArgumentException("string field: " + field.length + " bytes (expected: <= 255)");
        }
        return field.length;
    }
}
