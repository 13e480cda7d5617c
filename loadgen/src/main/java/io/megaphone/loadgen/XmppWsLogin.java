// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The login of one XMPP over WebSocket user (RFC 7395 framing: one element per text message), as a pure state
 * machine: {@link #start()} gives the first message, {@link #onMessage} takes each message the server sends and
 * says what to send back. The steps, as Strophe.js takes them:
 *
 * <pre>
 *   OPEN      → &lt;open to=D version='1.0'/&gt;                 ← &lt;open/&gt;, &lt;stream:features&gt; with &lt;mechanisms&gt;
 *   AUTH      → &lt;auth mechanism='PLAIN'&gt;                     ← &lt;success/&gt; (&lt;failure/&gt;: login-sasl-failure)
 *   RESTART   → &lt;open/&gt; again                                ← &lt;open/&gt;, &lt;stream:features&gt; with &lt;bind/&gt;
 *   BIND      → &lt;iq type='set'&gt;&lt;bind&gt;                         ← &lt;iq type='result'&gt; with &lt;jid&gt;
 *   PRESENCE  → &lt;presence/&gt;, then &lt;iq id='lg-ping'&gt;&lt;ping/&gt;  ← the ping's answer: ONLINE (the presence was handled)
 * </pre>
 *
 * A {@code <stream:error>} or {@code <close/>} before ONLINE fails the login. Not thread-safe (one event loop).
 */
final class XmppWsLogin {

    static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
    static final String PING_ID = "lg-ping";
    private static final Pattern STREAM_ERROR = Pattern.compile(
            "<(?:stream:)?error[^>]*>\\s*<([a-z-]+)[^>]*xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams['\"]");

    enum Step { NEW, OPEN, AUTH, RESTART, BIND, PRESENCE, ONLINE, FAILED }

    /** What to do after a message: the messages to send (in order), and the failure kind when the login failed. */
    record Reply(List<String> send, String failure) {
        static final Reply NOTHING = new Reply(List.of(), null);

        static Reply send(String... messages) {
            return new Reply(List.of(messages), null);
        }

        static Reply fail(String kind) {
            return new Reply(List.of(), kind);
        }
    }

    private final String domain;
    private final String user;
    private final String password;
    private final String resource;
    private Step step = Step.NEW;

    XmppWsLogin(String domain, String user, String password, String resource) {
        this.domain = domain;
        this.user = user;
        this.password = password;
        this.resource = resource;
    }

    Step step() {
        return step;
    }

    /** The stream's first message. */
    String start() {
        step = Step.OPEN;
        return open();
    }

    private String open() {
        return "<open xmlns='" + FRAMING + "' to='" + domain + "' version='1.0' xml:lang='en'/>";
    }

    /** The close a client sends to end the stream. */
    static String close() {
        return "<close xmlns='" + FRAMING + "'/>";
    }

    /** One message from the server, before ONLINE. */
    Reply onMessage(String message) {
        String text = message.strip();
        if (step == Step.ONLINE || step == Step.FAILED || step == Step.NEW) {
            return Reply.NOTHING;
        }
        if (text.contains("<stream:error") || text.startsWith("<error")) {
            Matcher m = STREAM_ERROR.matcher(text);
            return failed("ws-stream-error:" + (m.find() ? m.group(1) : "unknown"));
        }
        if (text.startsWith("<close")) {
            return failed("ws-close-during-login:" + step.name().toLowerCase());
        }
        switch (step) {
            case OPEN -> {
                if (text.contains("<mechanisms")) {
                    if (!text.contains(">PLAIN<")) {
                        return failed("login-no-plain");
                    }
                    step = Step.AUTH;
                    String plain = Base64.getEncoder().encodeToString(("\0" + user + "\0" + password)
                            .getBytes(StandardCharsets.UTF_8));
                    return Reply.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain
                            + "</auth>");
                }
            }
            case AUTH -> {
                if (text.startsWith("<failure")) {
                    return failed("login-sasl-failure");
                }
                if (text.startsWith("<success")) {
                    step = Step.RESTART;
                    return Reply.send(open());
                }
            }
            case RESTART -> {
                if (text.contains("urn:ietf:params:xml:ns:xmpp-bind")) {
                    step = Step.BIND;
                    return Reply.send("<iq type='set' id='bind1' xmlns='jabber:client'><bind"
                            + " xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource
                            + "</resource></bind></iq>");
                }
            }
            case BIND -> {
                if (text.startsWith("<iq") && text.contains("bind1")) {
                    if (!text.contains("<jid>") || isErrorIq(text)) {
                        return failed("login-bind-error");
                    }
                    step = Step.PRESENCE;
                    return Reply.send("<presence xmlns='jabber:client'/>",
                            "<iq type='get' id='" + PING_ID + "' to='" + domain + "' xmlns='jabber:client'>"
                                    + "<ping xmlns='urn:xmpp:ping'/></iq>");
                }
            }
            case PRESENCE -> {
                if (text.startsWith("<iq") && text.contains(PING_ID)) {
                    step = Step.ONLINE; // a result, or an error if mod_ping is off: either way the session answers
                    return Reply.NOTHING;
                }
            }
            default -> { }
        }
        return Reply.NOTHING; // what this step waits for has not come yet (the <open/> before the features, ...)
    }

    private Reply failed(String kind) {
        step = Step.FAILED;
        return Reply.fail(kind);
    }

    private static boolean isErrorIq(String text) {
        return text.contains("type='error'") || text.contains("type=\"error\"");
    }
}
