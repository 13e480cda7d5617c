// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The login state machine of a WebSocket user, fed the messages ejabberd 23.01's own /ws sends. */
class XmppWsLoginTest {

    // captured from ejabberd 23.01's own /ws (a raw WebSocket client, one message per line)
    static final String OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='8527973861984408177'"
            + " version='1.0' xml:lang='en' from='localhost'/>";
    static final String SASL_FEATURES = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
            + "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>DIGEST-MD5</mechanism>"
            + "<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-512</mechanism><mechanism>SCRAM-SHA-256</mechanism>"
            + "<mechanism>SCRAM-SHA-1</mechanism><mechanism>X-OAUTH2</mechanism></mechanisms></stream:features>";
    static final String BIND_FEATURES = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
            + "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'>"
            + "<optional/></session><sm xmlns='urn:xmpp:sm:2'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>";

    private final XmppWsLogin login = new XmppWsLogin("localhost", "lg7", "pw", "lg");

    static final String CLIENT_OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'"
            + " version='1.0' xml:lang='en'/>";

    @Test
    void aWholeLoginSendsEachStepAfterItsAnswerAndEndsOnlineWhenThePingIsAnswered() {
        assertEquals(CLIENT_OPEN, login.start());
        assertEquals(List.of(), login.onMessage(OPEN).send(), "the <open/> alone: wait for the features");
        String auth = only(login.onMessage(SASL_FEATURES));
        assertTrue(auth.startsWith("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"), auth);
        String credentials = auth.replaceAll("<[^>]+>", "");
        assertEquals("\0lg7\0pw", new String(Base64.getDecoder().decode(credentials), StandardCharsets.UTF_8));
        assertEquals(CLIENT_OPEN, only(login.onMessage("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")),
                "the stream restarts with a new <open/>");
        assertEquals(List.of(), login.onMessage(OPEN).send());
        assertTrue(only(login.onMessage(BIND_FEATURES)).contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>lg</resource></bind>"));
        List<String> afterBind = login.onMessage("<iq xmlns='jabber:client' type='result' id='bind1'><bind"
                + " xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>lg7@localhost/lg</jid></bind></iq>").send();
        assertEquals(2, afterBind.size());
        assertEquals("<presence xmlns='jabber:client'/>", afterBind.get(0));
        assertTrue(afterBind.get(1).contains("id='" + XmppWsLogin.PING_ID + "'"), afterBind.get(1));
        assertEquals(XmppWsLogin.Step.PRESENCE, login.step());
        login.onMessage("<presence xmlns='jabber:client' xml:lang='en' to='lg7@localhost/lg' from='lg7@localhost/lg'/>");
        assertEquals(XmppWsLogin.Step.PRESENCE, login.step(), "its own presence is not the ping's answer");
        login.onMessage("<iq xmlns='jabber:client' xml:lang='en' to='lg7@localhost/lg' from='localhost' type='result'"
                + " id='" + XmppWsLogin.PING_ID + "'/>");
        assertEquals(XmppWsLogin.Step.ONLINE, login.step());
    }

    @Test
    void aSaslFailureFailsTheLoginAndSendsNothingMore() {
        login.start();
        login.onMessage(SASL_FEATURES);
        XmppWsLogin.Reply r = login.onMessage("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"
                + "</failure>");
        assertEquals("login-sasl-failure", r.failure());
        assertEquals(List.of(), r.send());
        assertEquals(XmppWsLogin.Step.FAILED, login.step());
        assertEquals(List.of(), login.onMessage("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").send());
    }

    @Test
    void aStreamErrorNamesItsCondition() {
        login.start();
        XmppWsLogin.Reply r = login.onMessage("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                + "<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
        assertEquals("ws-stream-error:host-unknown", r.failure());
    }

    @Test
    void aCloseBeforeOnlineFailsTheLoginWithItsStep() {
        login.start();
        login.onMessage(SASL_FEATURES);
        assertEquals("ws-close-during-login:auth",
                login.onMessage("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>").failure());
    }

    @Test
    void aBindErrorFailsTheLogin() {
        login.start();
        login.onMessage(SASL_FEATURES);
        login.onMessage("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        login.onMessage(BIND_FEATURES);
        XmppWsLogin.Reply r = login.onMessage("<iq xmlns='jabber:client' type='error' id='bind1'><error type='cancel'>"
                + "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        assertEquals("login-bind-error", r.failure());
    }

    private static String only(XmppWsLogin.Reply reply) {
        assertNull(reply.failure());
        assertEquals(1, reply.send().size(), reply.send().toString());
        return reply.send().get(0);
    }
}
