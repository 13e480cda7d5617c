// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.TooLongFrameException;

/** Writing frames on a link, counted in its {@link LinkStats}, and ending a link with an ERROR frame. */
final class LinkFrames {

    private LinkFrames() {
    }

    /** Writes and flushes one frame. Event loop only. */
    static void send(Channel channel, LinkStats stats, Frame frame) {
        stats.sent(frame);
        channel.writeAndFlush(FrameCodec.encode(frame, channel.alloc()), channel.voidPromise());
    }

    /** Sends ERROR with this code and reason, then closes the link. */
    static void sendErrorAndClose(Channel channel, LinkStats stats, int code, String reason) {
        Frame.Error error = new Frame.Error(code, reason);
        stats.sent(error);
        channel.writeAndFlush(FrameCodec.encode(error, channel.alloc())).addListener(ChannelFutureListener.CLOSE);
    }

    /**
     * The ERROR code the server should hear for an exception of the pipeline (a frame it sent that the decoder
     * refused), or 0 when there is nothing to tell it (an I/O error: the link is gone).
     */
    static int errorCode(Throwable cause) {
        if (cause instanceof MalformedFrameException || cause.getCause() instanceof MalformedFrameException) {
            return Frame.Error.PROTOCOL_ERROR;
        }
        return cause instanceof TooLongFrameException ? Frame.Error.FRAME_TOO_LARGE : 0;
    }

    /** What to log and send for an exception: its root cause's message, with "malformed frame" said. */
    static String describe(Throwable cause) {
        Throwable root = cause;
        while (root.getCause() != null) {
            root = root.getCause();
        }
        String message = root.getMessage() == null ? root.getClass().getSimpleName() : root.getMessage();
        return errorCode(cause) == Frame.Error.PROTOCOL_ERROR ? "malformed frame: " + message : message;
    }
}
