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
                case FrameType.WELCOME -> new Frame.Welcome(bytes(in, MAC_BYTES), in.readUnsignedInt(),
                        in.readUnsignedInt(), in.readUnsignedInt(), string8(in));
                case FrameType.REQUEST -> new Frame.Request(in.readInt(), envelope(in));
                case FrameType.RESPONSE -> new Frame.Response(in.readInt(), in.readUnsignedShort(), string8(in),
                        bytes(in, in.readableBytes()));
                case FrameType.CANCEL -> new Frame.Cancel(in.readInt());
                case FrameType.PING -> new Frame.Ping(in.readLong());
                case FrameType.PONG -> new Frame.Pong(in.readLong());
                case FrameType.GOAWAY -> new Frame.GoAway(in.readUnsignedShort(), string16(in));
                case FrameType.ERROR -> new Frame.Error(in.readUnsignedShort(), string16(in));
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
        ByteBuf out = header(alloc, MAC_BYTES + 12 + 1 + node.length, FrameType.WELCOME);
        return out.writeBytes(w.mac()).writeInt((int) w.maxFrame()).writeInt((int) w.maxInflight())
                .writeInt((int) w.heartbeatMillis()).writeByte(checked8(node)).writeBytes(node);
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
