// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The frame limits on the ECM's side of a link, against the Java stand-in: an answer over the ECM's own
 * max-frame-bytes fails that request and is skipped without closing the link; a request over the server's
 * max_frame (from WELCOME) is never sent. The real ejabberd's side is OversizedAnswerTest.
 */
class FrameLimitTest {

    private static final byte[] SECRET = "frame-limit-test-secret-of-32-bytes".getBytes(StandardCharsets.UTF_8);
    private static final int ECM_MAX_FRAME = 16 * 1024;
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

    private void start() throws Exception {
        // Answers "big" with 100 KB (over the ECM's 16 KiB), anything else with an echo.
        server = new FakeMegaphoneServer(SECRET, request -> new String(request.envelope().body(),
                StandardCharsets.UTF_8).contains("big")
                ? new Frame.Response(request.id(), 200, "text/xml", new byte[100_000])
                : FakeMegaphoneServer.echo(request));
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "limit-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), ECM_MAX_FRAME);
        pool = new LinkPool(List.of(server.socketAddress()), 1, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
    }

    private CompletableFuture<Object> send(long rid, byte[] body) throws Exception {
        CompletableFuture<Object> outcome = new CompletableFuture<>();
        pool.submit(RequestEnvelope.of(rid, "sid-limit", InetAddress.getLoopbackAddress(), 1, body), new Exchange() {
            @Override
            public void onResponse(Frame.Response response) {
                outcome.complete(response);
            }

            @Override
            public void onFailure(Throwable error) {
                outcome.complete(error);
            }
        });
        return outcome;
    }

    @Test
    void anAnswerOverTheEcmsLimitFailsThatRequestAndTheLinkCarriesOn() throws Exception {
        start();
        Object big = send(1, "<body rid='1'>big</body>".getBytes(StandardCharsets.UTF_8)).get(5, TimeUnit.SECONDS);
        Object small = send(2, "<body rid='2'/>".getBytes(StandardCharsets.UTF_8)).get(5, TimeUnit.SECONDS);

        assertThat(big).isInstanceOfSatisfying(FrameTooLargeException.class, e -> {
            assertThat(e.answer()).isTrue();
            assertThat(e.request().rid()).as("the edge ends its session").isEqualTo(1);
            assertThat(e.request().sid()).isEqualTo("sid-limit");
        });
        assertThat(small).isInstanceOfSatisfying(Frame.Response.class,
                r -> assertThat(new String(r.body(), StandardCharsets.UTF_8)).isEqualTo("<body rid='2'/>"));
        assertThat(pool.links().get(0).stats().connects()).isEqualTo(1);
        assertThat(pool.resends()).isZero();
        assertThat(server.links).hasSize(1);
    }

    @Test
    void aRequestOverTheServersMaxFrameIsNeverSent() throws Exception {
        start(); // the stand-in announces max_frame 1 MiB
        Object tooBig = send(1, new byte[(1 << 20) + 1]).get(5, TimeUnit.SECONDS);
        Object small = send(2, "<body rid='2'/>".getBytes(StandardCharsets.UTF_8)).get(5, TimeUnit.SECONDS);

        assertThat(tooBig).isInstanceOfSatisfying(FrameTooLargeException.class,
                e -> {
                    assertThat(e.answer()).isFalse();
                    assertThat(e.request().rid()).as("the edge ends its session").isEqualTo(1);
                });
        assertThat(small).isInstanceOf(Frame.Response.class);
        assertThat(server.received).hasSize(1);
        assertThat(pool.links().get(0).stats().connects()).isEqualTo(1);
    }
}
