// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class TerminateConditionTest {

    private static String of(String body) {
        return TerminateCondition.of(body.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void findsTheConditionOfATerminate() {
        assertThat(of("<body type='terminate' condition='remote-stream-error' xmlns='http://jabber.org/protocol/httpbind'>"
                + "<stream:error/></body>")).isEqualTo("remote-stream-error");
        assertThat(of("<body xmlns=\"http://jabber.org/protocol/httpbind\" type=\"terminate\"/>")).isEqualTo("none");
    }

    @Test
    void ignoresOrdinaryBodiesAndTerminateTextInsideStanzas() {
        assertThat(of("<body xmlns='http://jabber.org/protocol/httpbind'/>")).isNull();
        assertThat(of("<body xmlns='http://jabber.org/protocol/httpbind'><message><body> type='terminate'</body>"
                + "</message></body>")).isNull();
        assertThat(of("")).isNull();
    }
}
