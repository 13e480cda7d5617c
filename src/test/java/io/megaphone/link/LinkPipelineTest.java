// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.timeout.IdleStateHandler;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** One link's pipeline, the ECM side, driven frame by frame: handshake, then heartbeats and requests. */
class LinkPipelineTest {

    private static final HandshakeProof PROOF = new HandshakeProof(
            "link-pipeline-test-secret-of-32-bytes-or-more".getBytes(StandardCharsets.UTF_8));
    private static final byte[] SERVER_NONCE = new byte[32];

    private final List<String> events = new ArrayList<>();
    private final LinkStats stats = new LinkStats();
    private final LinkMultiplexer.Listener listener = new LinkMultiplexer.Listener() {
        @Override
        public void onReady(LinkMultiplexer link) {
            events.add("ready");
        }

        @Override
        public void onHandshakeFailed(LinkMultiplexer link, Throwable cause) {
            events.add("failed: " + cause.getMessage());
        }

        @Override
        public void onClosed(LinkMultiplexer link, List<PendingRequest> orphans) {
            events.add("closed with " + orphans.size());
        }

        @Override
        public void redispatch(PendingRequest request, LinkMultiplexer from) {
            events.add("redispatch");
        }

        @Override
        public void refused(PendingRequest request, LinkMultiplexer from) {
            events.add("refused");
        }
    };

    private EmbeddedChannel link() {
        LinkSettings settings = new LinkSettings(PROOF, "ecm-1", Duration.ofSeconds(15), Duration.ofSeconds(2), 1 << 20);
        LinkMultiplexer multiplexer = new LinkMultiplexer(listener, "test#0", stats);
        return new EmbeddedChannel(new LinkHandshakeHandler(settings, multiplexer, listener, "test#0", stats),
                multiplexer);
    }

    private static Frame written(EmbeddedChannel channel) {
        ByteBuf bytes = channel.readOutbound();
        try {
            bytes.skipBytes(4);
            return FrameCodec.decode(bytes);
        } finally {
            bytes.release();
        }
    }

    @Test
    void afterWelcomeTheHandshakeHandlerLeavesThePipelineAndHeartbeatsTakeItsPlace() {
        EmbeddedChannel channel = link();
        channel.writeInbound(new Frame.Hello(1, 1, SERVER_NONCE));
        Frame.Auth auth = (Frame.Auth) written(channel);
        channel.writeInbound(new Frame.Welcome(PROOF.welcomeMac(1, auth.clientNonce(), SERVER_NONCE), 0, 0, 5000,
                "ejabberd@test"));

        assertThat(events).containsExactly("ready");
        assertThat(channel.pipeline().get(LinkHandshakeHandler.class)).isNull();
        assertThat(channel.pipeline().get(IdleStateHandler.class).getReaderIdleTimeInMillis()).isEqualTo(15_000);
        assertThat(channel.pipeline().get(LinkHeartbeatHandler.class)).isNotNull();
        channel.runPendingTasks();
        assertThat(written(channel)).isInstanceOf(Frame.Ping.class);
        channel.finishAndReleaseAll();
    }

    @Test
    void aWelcomeWithAWrongProofFailsTheHandshakeOnceWithTheReason() {
        EmbeddedChannel channel = link();
        channel.writeInbound(new Frame.Hello(1, 1, SERVER_NONCE));
        written(channel);
        channel.writeInbound(new Frame.Welcome(new byte[32], 0, 0, 5000, "ejabberd@test"));
        channel.runPendingTasks();

        assertThat(channel.isOpen()).isFalse();
        assertThat(events).containsExactly("failed: test#0: server's WELCOME proof is wrong"
                + " (the two sides' secrets differ)");
        assertThat(written(channel)).isInstanceOf(Frame.Error.class);
    }

    @Test
    void aReadyLinkThatHearsNothingForThreeHeartbeatsCloses() throws Exception {
        EmbeddedChannel channel = link();
        channel.writeInbound(new Frame.Hello(1, 1, SERVER_NONCE));
        Frame.Auth auth = (Frame.Auth) written(channel);
        channel.writeInbound(new Frame.Welcome(PROOF.welcomeMac(1, auth.clientNonce(), SERVER_NONCE), 0, 0, 100,
                "ejabberd@test"));

        TimeUnit.MILLISECONDS.sleep(350);
        channel.runPendingTasks();

        assertThat(channel.isOpen()).isFalse();
        assertThat(events).containsExactly("ready", "closed with 0");
        channel.finishAndReleaseAll();
    }
}
