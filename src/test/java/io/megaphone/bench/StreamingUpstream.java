// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.megaphone.link.HandshakeProof;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A stand-in for mod_megaphone's side of a version-2 link, for the idle-WebSocket memory benchmark
 * (bench/websocket-heap.sh): it opens every stream (STREAM_OPENED with 262,144 bytes of credit), answers a
 * client's {@code <open/>} as ejabberd's WebSocket does, with {@link XmppStreamAnswers#OPEN} then
 * {@link XmppStreamAnswers#FEATURES} (two DATA), gives the credit of each DATA back (WINDOW), and otherwise sends
 * nothing: an opened stream then stays idle. Loopback only.
 *
 * <p>Usage: {@code StreamingUpstream <port> <secret>}. Prints "upstream listening on 127.0.0.1:<port>", a line
 * per link, then every 5 seconds when they changed the counts of STREAM_OPEN, DATA and STREAM_CLOSE received.
 */
public final class StreamingUpstream {

    private static final AtomicLong OPENS = new AtomicLong();
    private static final AtomicLong DATA = new AtomicLong();
    private static final AtomicLong CLOSES = new AtomicLong();

    private StreamingUpstream() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: StreamingUpstream <port> <secret>");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        byte[] secret = args[1].getBytes(StandardCharsets.UTF_8);
        new HandshakeProof(secret); // same validation as the ECM (non-empty secret)
        Channel server = StandInLink.listen(port, 1, () -> new ServerSide(secret));
        System.out.println("upstream listening on " + server.localAddress());
        String last = "";
        while (server.isOpen()) {
            Thread.sleep(5000);
            String now = "upstream: " + OPENS.get() + " STREAM_OPEN, " + DATA.get() + " DATA, " + CLOSES.get()
                    + " STREAM_CLOSE received";
            if (!now.equals(last)) {
                System.out.println(now);
                last = now;
            }
        }
    }

    private static final class ServerSide extends StandInLink {
        ServerSide(byte[] secret) {
            super(secret, "streaming-upstream@bench", 2);
        }

        @Override
        void onFrame(ChannelHandlerContext ctx, Frame frame) {
            if (frame instanceof Frame.StreamOpen open) {
                OPENS.incrementAndGet();
                send(ctx, new Frame.StreamOpened(open.stream(), STREAM_WINDOW));
            } else if (frame instanceof Frame.Data data) {
                DATA.incrementAndGet();
                if (XmppStreamAnswers.isOpen(data.payload())) {
                    send(ctx, new Frame.Data(data.stream(), XmppStreamAnswers.OPEN));
                    send(ctx, new Frame.Data(data.stream(), XmppStreamAnswers.FEATURES));
                }
                send(ctx, new Frame.Window(data.stream(), data.payload().length));
            } else if (frame instanceof Frame.StreamClose) {
                CLOSES.incrementAndGet();
            }
        }

        private static void send(ChannelHandlerContext ctx, Frame frame) {
            ctx.writeAndFlush(FrameCodec.encode(frame, ctx.alloc()));
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            System.out.println("upstream: link from " + ctx.channel().remoteAddress() + " closed");
        }
    }
}
