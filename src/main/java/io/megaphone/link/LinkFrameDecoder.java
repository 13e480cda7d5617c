// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;

/**
 * Splits the inbound byte stream into frames ({@code length u32 | type u8 | payload}) and decodes each into a
 * {@link Frame}. The outcomes stay apart: too few bytes waits, a complete frame the spec does not allow raises
 * {@link MalformedFrameException}, and a {@code length} over {@code maxFrameLength} fails fast with
 * {@link io.netty.handler.codec.TooLongFrameException} without buffering the rest, except for a RESPONSE: that one
 * answer is skipped byte by byte as it arrives and stands for its request as
 * {@link #tooLargeAnswer(int) mod_megaphone's "answer too large" RESPONSE}, so one big answer (a roster, a vCard)
 * fails one request and never the link with everything on it.
 *
 * <pre>
 *   | length u32 &gt; max | 0x11 | id u32 | ... length - 5 bytes skipped ... |
 *   -&gt; Response(id, 502, "", [])
 * </pre>
 */
final class LinkFrameDecoder extends LengthFieldBasedFrameDecoder {

    /** Status of mod_megaphone's "answer too large for the link" RESPONSE (no content type, empty body). */
    static final int ANSWER_TOO_LARGE_STATUS = 502;
    private static final int HEADER = 4 + 1 + 4; // length, type, id

    private final long maxFrameLength;
    private final LinkStats stats;
    /** Bytes of an oversized RESPONSE still to skip. */
    private long skipping;

    /** @param stats where each decoded frame is counted (megaphone.link.frames, direction in) */
    LinkFrameDecoder(int maxFrameLength, LinkStats stats) {
        // length field: 4 bytes at offset 0, counting what follows it; strip it from the frame passed on.
        super(maxFrameLength + 4, 0, 4, 0, 4, true);
        this.maxFrameLength = maxFrameLength;
        this.stats = stats;
    }

    /** The RESPONSE that stands for an answer too large for the link (docs/protocol.md, section 3). */
    static Frame.Response tooLargeAnswer(int id) {
        return new Frame.Response(id, ANSWER_TOO_LARGE_STATUS, "", new byte[0]);
    }

    static boolean isTooLargeAnswer(Frame.Response response) {
        return response.status() == ANSWER_TOO_LARGE_STATUS && response.body().length == 0
                && response.contentType().isEmpty();
    }

    @Override
    protected Object decode(ChannelHandlerContext ctx, ByteBuf in) throws Exception {
        if (skipping > 0) {
            int skip = (int) Math.min(skipping, in.readableBytes());
            in.skipBytes(skip);
            skipping -= skip;
            return null;
        }
        if (in.readableBytes() >= 4) {
            int at = in.readerIndex();
            long length = in.getUnsignedInt(at);
            if (length > maxFrameLength) {
                if (in.readableBytes() < 5) {
                    return null; // the type decides
                }
                if (in.getByte(at + 4) == FrameType.RESPONSE) {
                    if (in.readableBytes() < HEADER) {
                        return null;
                    }
                    int id = in.getInt(at + 5);
                    in.skipBytes(HEADER);
                    skipping = length - 5;
                    Frame answer = tooLargeAnswer(id);
                    stats.received(answer);
                    return answer;
                }
            }
        }
        ByteBuf frame = (ByteBuf) super.decode(ctx, in);
        if (frame == null) {
            return null;
        }
        try {
            Frame decoded = FrameCodec.decode(frame);
            stats.received(decoded);
            return decoded;
        } finally {
            frame.release();
        }
    }
}
