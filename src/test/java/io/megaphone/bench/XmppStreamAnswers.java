// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import java.nio.charset.StandardCharsets;

/**
 * What every server of the idle-WebSocket memory benchmark (bench/websocket-heap.sh) answers to a client's
 * {@code <open/>}: the two text messages ejabberd's own WebSocket sends before authentication, so that the ECM's
 * stand-in link and the bare servers keep the same messages in flight.
 */
final class XmppStreamAnswers {

    /** The client's stream header, as {@link IdleWebSocketClient} sends it. */
    static final byte[] CLIENT_OPEN = ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'"
            + " version='1.0'/>").getBytes(StandardCharsets.UTF_8);

    static final byte[] OPEN = ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='4412771234870000001'"
            + " from='localhost' version='1.0' xml:lang='en'/>").getBytes(StandardCharsets.UTF_8);

    static final byte[] FEATURES = ("<stream:features xmlns:stream='http://etherx.jabber.org/streams'"
            + " xmlns='jabber:client'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            + "<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
            + "<register xmlns='http://jabber.org/features/iq-register'/></stream:features>")
            .getBytes(StandardCharsets.UTF_8);

    private XmppStreamAnswers() {
    }

    /** Whether a text message is a stream header ({@code <open}). */
    static boolean isOpen(byte[] message) {
        return message.length >= 5 && message[0] == '<' && message[1] == 'o' && message[2] == 'p' && message[3] == 'e'
                && message[4] == 'n';
    }

    static boolean isOpen(String message) {
        return message.startsWith("<open");
    }
}
