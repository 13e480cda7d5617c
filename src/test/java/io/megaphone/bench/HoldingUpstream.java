// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.HandshakeProof;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A stand-in for mod_megaphone's side of the link, for the held-request memory benchmark
 * (bench/held-requests.sh). It completes the handshake of docs/protocol.md section 2, answers PING with PONG,
 * and never answers a REQUEST: every request the ECM forwards stays held there, which is what a long-polling
 * BOSH request is in production. Loopback only.
 *
 * <p>Usage: {@code HoldingUpstream <port> <secret>}. Prints "upstream listening on 127.0.0.1:<port>", then a
 * line per link and a count of REQUEST/CANCEL frames every 5 seconds when it changed.
 *
 * <p>The handshake is {@link StandInLink}'s.
 */
public final class HoldingUpstream {

    private static final AtomicLong REQUESTS = new AtomicLong();
    private static final AtomicLong CANCELS = new AtomicLong();

    private HoldingUpstream() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: HoldingUpstream <port> <secret>");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        byte[] secret = args[1].getBytes(StandardCharsets.UTF_8);
        new HandshakeProof(secret); // same validation as the ECM (non-empty secret)
        Channel server = StandInLink.listen(port, 1, () -> new ServerSide(secret));
        System.out.println("upstream listening on " + server.localAddress());
        long lastRequests = -1;
        long lastCancels = -1;
        while (server.isOpen()) {
            Thread.sleep(5000);
            long requests = REQUESTS.get();
            long cancels = CANCELS.get();
            if (requests != lastRequests || cancels != lastCancels) {
                System.out.println("upstream: " + requests + " REQUEST, " + cancels + " CANCEL received");
                lastRequests = requests;
                lastCancels = cancels;
            }
        }
    }

    /** Counts REQUEST and CANCEL frames and never answers a REQUEST. */
    private static final class ServerSide extends StandInLink {
        ServerSide(byte[] secret) {
            super(secret, "holding-upstream@bench");
        }

        @Override
        void onFrame(ChannelHandlerContext ctx, Frame frame) {
            if (frame instanceof Frame.Request) {
                REQUESTS.incrementAndGet(); // held forever: never answered
            } else if (frame instanceof Frame.Cancel) {
                CANCELS.incrementAndGet();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            System.out.println("upstream: link from " + ctx.channel().remoteAddress() + " closed");
        }
    }
}
