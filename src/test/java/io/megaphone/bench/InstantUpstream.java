// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.megaphone.link.HandshakeProof;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A stand-in for mod_megaphone that answers every REQUEST at once with a small empty {@code <body/>}, for the
 * forwarding-throughput benchmark (bench/forwarding.sh): what the ECM costs per request when ejabberd costs
 * nothing. Same handshake as {@link HoldingUpstream}; loopback only.
 *
 * <p>Usage: {@code InstantUpstream <port> <secret> [threads]}. Answers are flushed once per read batch.
 */
public final class InstantUpstream {

    static final byte[] BODY = "<body xmlns='http://jabber.org/protocol/httpbind'/>".getBytes(StandardCharsets.UTF_8);
    private static final AtomicLong REQUESTS = new AtomicLong();

    private InstantUpstream() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: InstantUpstream <port> <secret> [threads]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        byte[] secret = args[1].getBytes(StandardCharsets.UTF_8);
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        new HandshakeProof(secret);
        Channel server = StandInLink.listen(port, threads, () -> new ServerSide(secret));
        System.out.println("instant upstream listening on " + server.localAddress());
        long last = -1;
        while (server.isOpen()) {
            Thread.sleep(5000);
            long requests = REQUESTS.get();
            if (requests != last) {
                System.out.println("instant upstream: " + requests + " REQUEST answered");
                last = requests;
            }
        }
    }

    /** Answers every REQUEST at once; answers are flushed once per read batch. */
    private static final class ServerSide extends StandInLink {
        private boolean pendingFlush;

        ServerSide(byte[] secret) {
            super(secret, "instant-upstream@bench");
        }

        @Override
        void onFrame(ChannelHandlerContext ctx, Frame frame) {
            if (frame instanceof Frame.Request request) {
                REQUESTS.incrementAndGet();
                ctx.write(FrameCodec.encode(new Frame.Response(request.id(), 200, "text/xml; charset=utf-8", BODY),
                        ctx.alloc()));
                pendingFlush = true;
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            if (pendingFlush) {
                pendingFlush = false;
                ctx.flush();
            }
        }
    }
}
