// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Base64;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * A small XMPP client over WebSocket (RFC 7395, Java's own WebSocket) with stream management (XEP-0198, urn:xmpp:sm:3)
 * when asked for it, as a real client implements it: after {@code <enabled/>} it counts each stanza it receives (h)
 * and answers {@code <r/>} with {@code <a h/>}; it keeps each stanza it sends until the server's {@code <a h/>} (or
 * {@code <resumed h/>}) covers it, keeps stanzas sent while it has no connection, and after {@code <resumed/>}
 * re-sends whatever the server's h does not cover, in order. Without stream management it counts nothing and keeps
 * nothing: a stanza sent without a connection is lost, as with any plain client.
 */
final class SmWebSocketClient implements AutoCloseable {

    static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
    static final String SM = "urn:xmpp:sm:3";
    private static final String CLIENT = "jabber:client";

    private final String user;
    private final String password;
    private final String resource;
    private final boolean streamManagement;

    /** Every chat body received, in order, and each presence as {@code from type} (type "available" when none). */
    final List<String> chatBodies = new CopyOnWriteArrayList<>();
    final List<String> presences = new CopyOnWriteArrayList<>();
    /** What went wrong on the listener's thread (an unparsable message, an ack outside what was sent). */
    final List<String> failures = new CopyOnWriteArrayList<>();

    // ---- guarded by this ----
    private Connection connection;
    /** Stream management: enabled, its id, stanzas handled (received) and sent, and the sent ones not yet acked. */
    private boolean smEnabled;
    private String smId;
    private long handled;
    private long sent;
    private final Deque<String> unacked = new ArrayDeque<>();
    private long resends;

    SmWebSocketClient(String user, String password, String resource, boolean streamManagement) {
        this.user = user;
        this.password = password;
        this.resource = resource;
        this.streamManagement = streamManagement;
    }

    /** The jid this client binds. */
    String jid() {
        return user + "@" + PrivateEjabberd.DOMAIN + "/" + resource;
    }

    /** One WebSocket and what it heard. */
    final class Connection implements WebSocket.Listener {
        final LinkedBlockingQueue<Element> handshake = new LinkedBlockingQueue<>();
        final CompletableFuture<Integer> closed = new CompletableFuture<>();
        private final StringBuilder partial = new StringBuilder();
        volatile WebSocket ws;

        @Override
        public CompletionStage<?> onText(WebSocket socket, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                String text = partial.toString();
                partial.setLength(0);
                try {
                    received(this, parse(text));
                } catch (Exception | AssertionError e) {
                    failures.add(e + " on " + text);
                }
            }
            socket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket socket, int statusCode, String reason) {
            gone();
            closed.complete(statusCode);
            return null;
        }

        @Override
        public void onError(WebSocket socket, Throwable error) {
            gone();
            closed.complete(-1);
        }

        private void gone() {
            synchronized (SmWebSocketClient.this) {
                if (connection == this) {
                    connection = null;
                }
            }
        }

        Element await(Predicate<Element> wanted, String what) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (true) {
                Element e = handshake.poll(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (e == null) {
                    throw new AssertionError("no " + what + " within 15 s (closed: " + closed.getNow(null) + ")");
                }
                if (wanted.test(e)) {
                    return e;
                }
            }
        }

        synchronized void write(String text) throws Exception {
            ws.sendText(text, true).get(5, TimeUnit.SECONDS);
        }
    }

    /** Logs in on a new WebSocket to {@code url}: SASL PLAIN, bind, then {@code <enable resume='true'/>} with SM. */
    void login(String url) throws Exception {
        Connection c = authenticate(url);
        c.write("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>" + resource + "</resource></bind></iq>");
        c.await(e -> e.getLocalName().equals("iq") && "bind1".equals(e.getAttribute("id")), "bind result");
        if (streamManagement) {
            c.write("<enable xmlns='" + SM + "' resume='true'/>");
            Element enabled = c.await(e -> SM.equals(e.getNamespaceURI())
                    && (e.getLocalName().equals("enabled") || e.getLocalName().equals("failed")), "<enabled/>");
            if (!enabled.getLocalName().equals("enabled") || !"true".equals(enabled.getAttribute("resume"))) {
                throw new AssertionError("stream management not enabled with resumption: " + enabled.getLocalName());
            }
            synchronized (this) {
                smEnabled = true;
                smId = enabled.getAttribute("id");
                handled = 0;
                sent = 0;
                unacked.clear();
            }
        }
        synchronized (this) {
            connection = c;
        }
    }

    /**
     * Resumes the session on a new WebSocket to {@code url}: SASL PLAIN, then {@code <resume previd h/>}. On
     * {@code <resumed h/>} drops what h covers and re-sends the rest; returns the server's answer
     * ({@code resumed} or {@code failed}).
     */
    String resume(String url) throws Exception {
        Connection c = authenticate(url);
        long h;
        String previd;
        synchronized (this) {
            h = handled;
            previd = smId;
        }
        c.write("<resume xmlns='" + SM + "' previd='" + previd + "' h='" + h + "'/>");
        Element answer = c.await(e -> SM.equals(e.getNamespaceURI())
                && (e.getLocalName().equals("resumed") || e.getLocalName().equals("failed")), "<resumed/>");
        if (!answer.getLocalName().equals("resumed")) {
            return "failed";
        }
        if (!previd.equals(answer.getAttribute("previd"))) {
            throw new AssertionError("resumed " + answer.getAttribute("previd") + ", not " + previd);
        }
        synchronized (this) {
            acked(Long.parseLong(answer.getAttribute("h")));
            for (String stanza : unacked) {
                c.write(stanza);
                resends++;
            }
            connection = c;
        }
        return "resumed";
    }

    private Connection authenticate(String url) throws Exception {
        Connection c = new Connection();
        c.ws = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(URI.create(url), c).get(10, TimeUnit.SECONDS);
        c.write(open());
        c.await(e -> e.getLocalName().equals("features"), "stream features");
        String credentials = Base64.getEncoder().encodeToString(
                ("\0" + user + "\0" + password).getBytes(StandardCharsets.UTF_8));
        c.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + credentials + "</auth>");
        Element outcome = c.await(e -> e.getLocalName().equals("success") || e.getLocalName().equals("failure"),
                "SASL outcome");
        if (!outcome.getLocalName().equals("success")) {
            throw new AssertionError("SASL failed for " + user);
        }
        c.write(open());
        c.await(e -> e.getLocalName().equals("features"), "stream features after SASL");
        return c;
    }

    private static String open() {
        return "<open xmlns='" + FRAMING + "' to='" + PrivateEjabberd.DOMAIN + "' version='1.0'/>";
    }

    /**
     * Sends a stanza. With stream management it is kept until acked, and only kept while there is no connection
     * (a resume sends it); without, it goes on the current connection or nowhere.
     */
    synchronized void send(String stanza) throws Exception {
        if (smEnabled) {
            unacked.addLast(stanza);
            sent++;
        }
        if (connection != null) {
            try {
                connection.write(stanza);
            } catch (Exception e) {
                connection = null; // lost: kept in unacked with stream management
            }
        }
    }

    /** Asks the server for an ack ({@code <r/>}), when stream management is on and there is a connection. */
    synchronized void requestAck() {
        if (smEnabled && connection != null) {
            try {
                connection.write("<r xmlns='" + SM + "'/>");
            } catch (Exception e) {
                connection = null;
            }
        }
    }

    /** The current connection (null when there is none). */
    synchronized Connection connection() {
        return connection;
    }

    synchronized long unackedCount() {
        return unacked.size();
    }

    synchronized long resends() {
        return resends;
    }

    synchronized long handled() {
        return handled;
    }

    synchronized String smId() {
        return smId;
    }

    private void received(Connection from, Element e) throws Exception {
        boolean stanza = CLIENT.equals(e.getNamespaceURI())
                && List.of("message", "presence", "iq").contains(e.getLocalName());
        synchronized (this) {
            if (stanza && smEnabled) {
                handled++;
            }
            if (SM.equals(e.getNamespaceURI()) && e.getLocalName().equals("r")) {
                from.write("<a xmlns='" + SM + "' h='" + handled + "'/>");
                return;
            }
            if (SM.equals(e.getNamespaceURI()) && e.getLocalName().equals("a")) {
                acked(Long.parseLong(e.getAttribute("h")));
                return;
            }
        }
        if (stanza && e.getLocalName().equals("message")) {
            Node body = e.getElementsByTagNameNS(CLIENT, "body").item(0);
            if (body != null) {
                chatBodies.add(body.getTextContent());
            }
        } else if (stanza && e.getLocalName().equals("presence")) {
            String type = e.getAttribute("type");
            presences.add(e.getAttribute("from") + " " + (type.isEmpty() ? "available" : type));
        }
        from.handshake.add(e);
    }

    /** The server has handled {@code h} of our stanzas: the oldest unacked ones up to it are done. */
    private void acked(long h) {
        long unackedFrom = sent - unacked.size(); // the count of the oldest unacked stanza, minus one
        if (h < unackedFrom || h > sent) {
            throw new AssertionError("ack h=" + h + " outside " + unackedFrom + ".." + sent);
        }
        for (long i = unackedFrom; i < h; i++) {
            unacked.removeFirst();
        }
    }

    static Element parse(String xml) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        return factory.newDocumentBuilder().parse(new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)))
                .getDocumentElement();
    }

    /** Ends the stream ({@code <close/>}) on the current connection, if any. */
    @Override
    public void close() {
        Connection c;
        synchronized (this) {
            c = connection;
            connection = null;
        }
        if (c != null) {
            try {
                c.write("<close xmlns='" + FRAMING + "'/>");
                c.closed.get(5, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // gone already
            }
        }
    }

}
