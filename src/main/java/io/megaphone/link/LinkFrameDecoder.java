package io.megaphone.link;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;

/**
 * Splits the inbound byte stream into frames ({@code length u32 | type u8 | payload}) and decodes each into a
 * {@link Frame}. The three outcomes stay apart: too few bytes waits, a {@code length} over {@code maxFrameLength}
 * fails fast with {@link io.netty.handler.codec.TooLongFrameException} without buffering the rest, and a complete
 * frame the spec does not allow raises {@link MalformedFrameException}.
 */
final class LinkFrameDecoder extends LengthFieldBasedFrameDecoder {

    LinkFrameDecoder(int maxFrameLength) {
        // length field: 4 bytes at offset 0, counting what follows it; strip it from the frame passed on.
        super(maxFrameLength + 4, 0, 4, 0, 4, true);
    }

    @Override
    protected Object decode(ChannelHandlerContext ctx, ByteBuf in) throws Exception {
        ByteBuf frame = (ByteBuf) super.decode(ctx, in);
        if (frame == null) {
            return null;
        }
        try {
            return FrameCodec.decode(frame);
        } finally {
            frame.release();
        }
    }
}
