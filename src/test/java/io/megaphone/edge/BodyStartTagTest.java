// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class BodyStartTagTest {

    private static BodyStartTag parse(String xml) {
        return BodyStartTag.parse(xml.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void readsSidAndRidOfASessionRequest() {
        BodyStartTag tag = parse("<body rid='4242' sid='s1d' xmlns='http://jabber.org/protocol/httpbind'>"
                + "<message to='bob@localhost'><body>hi</body></message></body>");
        assertThat(tag).isEqualTo(new BodyStartTag("s1d", 4242));
    }

    @Test
    void aSessionCreationHasNoSid() {
        BodyStartTag tag = parse("<?xml version='1.0'?><body content='text/xml; charset=utf-8' hold='1' rid='1'"
                + " to='localhost' wait='60' xmlns='http://jabber.org/protocol/httpbind'"
                + " xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>");
        assertThat(tag.sid()).isEmpty();
        assertThat(tag.rid()).isEqualTo(1);
    }

    @Test
    void onlyTheStartTagIsRead() {
        // The content after the start tag is broken, but that is ejabberd's to judge.
        assertThat(parse("<body rid='7' xmlns='http://jabber.org/protocol/httpbind'><unclosed>").rid()).isEqualTo(7);
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "",
        "not xml",
        "<body rid='1'/>",
        "<body xmlns='urn:other' rid='1'/>",
        "<html><body/></html>",
        "<body rid='abc' xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='-5' xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='9007199254740992' xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'",
        "<!DOCTYPE body [<!ENTITY a 'aaaa'>]><body xmlns='http://jabber.org/protocol/httpbind'/>",
        "<body rid='1' rid='2' xmlns='http://jabber.org/protocol/httpbind'/>",
    })
    void anythingButABoshBodyIsABadRequest(String xml) {
        assertThatThrownBy(() -> parse(xml)).isInstanceOf(BadRequestException.class);
    }

    @Test
    void invalidUtf8IsABadRequest() {
        byte[] body = "<body rid='1' xmlns='http://jabber.org/protocol/httpbind' to='\u00e9'/>"
                .getBytes(StandardCharsets.UTF_8);
        byte[] broken = body.clone();
        for (int i = 0; i < broken.length; i++) {
            if (broken[i] == (byte) 0xC3) {
                broken[i + 1] = 0x41; // a lead byte followed by a non-continuation byte
            }
        }
        assertThatThrownBy(() -> BodyStartTag.parse(broken)).isInstanceOf(BadRequestException.class);
    }
}
