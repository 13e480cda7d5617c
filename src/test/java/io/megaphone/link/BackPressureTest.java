// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.netty.channel.Channel;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * An ejabberd that stops reading its link (the stand-in turns auto-read off): the ECM stops writing to that link
 * once its outbound buffer passes the high water mark, answers further requests 503 at once, and its outbound bytes
 * stay bounded, instead of buffering every request in memory.
 */
class BackPressureTest {

    private static final byte[] SECRET = "back-pressure-secret-back-pressure-secret".getBytes(StandardCharsets.UTF_8);
    private static final int REQUESTS = 600;
    private static final int BODY = 100_000; // 60 MB in all
    private FakeMegaphoneServer server;
    private LinkPool pool;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void aLinkWhoseServerStopsReadingBuffersAtMostAboutItsHighWaterMark() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        // Stall detection would close this link within 150 ms (LinkStallTest): out of the way, this is about the buffer.
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "slow-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20, null, null, Duration.ofSeconds(60));
        pool = new LinkPool(List.of(server.socketAddress()), 1, settings, Duration.ofSeconds(60),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        for (Channel link : server.links) {
            link.config().setAutoRead(false); // ejabberd stops reading
        }

        AtomicInteger unavailable = new AtomicInteger();
        Exchange exchange = new Exchange() {
            @Override
            public void onResponse(Frame.Response response) {
            }

            @Override
            public void onFailure(Throwable error) {
                if (error instanceof UpstreamUnavailableException) {
                    unavailable.incrementAndGet();
                }
            }
        };
        byte[] body = new byte[BODY];
        for (int i = 1; i <= REQUESTS; i++) {
            pool.submit(RequestEnvelope.of(i, "sid-" + i, InetAddress.getLoopbackAddress(), 1, body), exchange);
        }
        LinkMultiplexer link = ((LinkSlot) pool.links().get(0)).current();
        await().atMost(Duration.ofSeconds(10))
                .until(() -> link.inflightCount() + unavailable.get() == REQUESTS);

        // The kernel's socket buffers take a few MB; past them, at most the 4 MiB mark plus one request.
        Channel channel = link.channel();
        long pending = channel.eventLoop().submit(() -> channel.unsafe().outboundBuffer().totalPendingWriteBytes())
                .get();
        assertThat(pending).isLessThanOrEqualTo(LinkPool.WATER_MARK.high() + BODY + 100);
        assertThat(unavailable.get()).as("requests refused 503 instead of buffered").isGreaterThan(REQUESTS / 2);
        assertThat(pool.readyLinks()).as("the link stays up (readiness), it only takes nothing").isEqualTo(1);
    }
}
