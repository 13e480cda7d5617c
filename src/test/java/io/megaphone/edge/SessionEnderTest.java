// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.springframework.core.io.buffer.DefaultDataBufferFactory;

/** What SessionEnder keeps of a refused body, and the terminate it sends. */
class SessionEnderTest {

    private static final String NS = "http://jabber.org/protocol/httpbind";

    @Test
    void thePrefixKeepsTheFirst4KbAcrossBuffersAndNothingMore() {
        SessionEnder.Prefix prefix = new SessionEnder.Prefix();
        DefaultDataBufferFactory buffers = DefaultDataBufferFactory.sharedInstance;
        prefix.accept(buffers.wrap("<body ".getBytes(StandardCharsets.US_ASCII)));
        prefix.accept(buffers.wrap("a".repeat(300_000).getBytes(StandardCharsets.US_ASCII)));
        prefix.accept(buffers.wrap("more".getBytes(StandardCharsets.US_ASCII)));

        assertThat(prefix.bytes()).hasSize(SessionEnder.PREFIX_BYTES);
        assertThat(new String(prefix.bytes(), 0, 7, StandardCharsets.US_ASCII)).isEqualTo("<body a");
    }

    @Test
    void aStartTagThatDoesNotEndWithinThePrefixNamesNoSessionToEnd() {
        Counter sent = new SimpleMeterRegistry().counter("sent");
        // no pool: a terminate sent would fail here
        SessionEnder ender = new SessionEnder(null, sent, sent, sent);
        byte[] body = ("<body rid='5' huge='" + "A".repeat(10_000) + "' sid='s1' xmlns='" + NS + "'/>")
                .getBytes(StandardCharsets.UTF_8);
        byte[] prefix = java.util.Arrays.copyOf(body, SessionEnder.PREFIX_BYTES);

        ender.endNamedIn(prefix, InetAddress.getLoopbackAddress(), 1);
        ender.endNamedIn(("<body rid='1' to='localhost' xmlns='" + NS + "'/>").getBytes(StandardCharsets.UTF_8),
                InetAddress.getLoopbackAddress(), 1); // a session creation: no session yet

        assertThat(sent.count()).isZero();
    }

    @Test
    void theTerminateNamesTheSessionAndTheRid() throws Exception {
        String xml = new String(SessionEnder.terminate(42, "a'b<c"), StandardCharsets.UTF_8);

        assertThat(BodyStartTag.parse(xml.getBytes(StandardCharsets.UTF_8))).isEqualTo(new BodyStartTag("a'b<c", 42));
        assertThat(xml).contains("type='terminate'");
    }
}
