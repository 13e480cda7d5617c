// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * A plain BOSH (XEP-0124/XEP-0206) client over real HTTP, for the tests: session creation, SASL PLAIN, stream
 * restart, resource binding, presence, chat and long polls. It sends exactly what a web client sends.
 */
public final class BoshTestClient {

    static final String NS = "http://jabber.org/protocol/httpbind";
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private final java.util.function.Supplier<String> url;
    private final String domain;
    private final AtomicLong rid = new AtomicLong(1_000_000 + (long) (Math.random() * 1_000_000_000));
    private final List<Element> received = new ArrayList<>();
    private final java.util.Map<String, String> headers = new java.util.LinkedHashMap<>();
    private String sid;
    private String jid;
    private HttpClient http = HTTP;

    public BoshTestClient(String url, String domain) {
        this(() -> url, domain);
    }

    /** A client whose every request goes to the URL {@code url} gives at that moment: a load balancer stand-in. */
    public BoshTestClient(java.util.function.Supplier<String> url, String domain) {
        this.url = url;
        this.domain = domain;
    }

    /** Sends every request with {@code client} (e.g. one that trusts a test certificate). */
    public BoshTestClient withHttpClient(HttpClient client) {
        this.http = client;
        return this;
    }

    /** Adds a header to every request this client sends (e.g. X-Forwarded-For). */
    public BoshTestClient withHeader(String name, String value) {
        headers.put(name, value);
        return this;
    }

    /** One HTTP answer: status and raw body. */
    public record Answer(int status, String body, java.net.http.HttpHeaders headers) {
    }

    public String sid() {
        return sid;
    }

    public String jid() {
        return jid;
    }

    public long nextRid() {
        return rid.incrementAndGet();
    }

    /** Session creation, SASL PLAIN, restart, bind, initial presence. */
    public BoshTestClient login(String user, String password, int waitSeconds) throws Exception {
        return login(user, password, waitSeconds, "it");
    }

    /** {@link #login(String, String, int)} binding {@code resource}: several sessions of one user. */
    public BoshTestClient login(String user, String password, int waitSeconds, String resource) throws Exception {
        return login(user, password, waitSeconds, resource, true);
    }

    /**
     * {@link #login(String, String, int, String)}; without {@code presence} the session stays unavailable, so the
     * presence of the user's other sessions never reaches it (nothing arrives for it unasked).
     */
    public BoshTestClient login(String user, String password, int waitSeconds, String resource, boolean presence)
            throws Exception {
        Answer created = post("<body content='text/xml; charset=utf-8' hold='1' rid='" + nextRid() + "' to='" + domain
                + "' ver='1.6' wait='" + waitSeconds + "' xml:lang='en' xmlns='" + NS
                + "' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>");
        if (created.status() != 200) {
            throw new IllegalStateException("session creation answered " + created.status() + ": " + created.body());
        }
        Element body = parse(created.body());
        sid = body.getAttribute("sid");
        if (created.status() != 200 || sid.isEmpty()) {
            throw new IllegalStateException("session creation failed: " + created);
        }
        collect(body);
        awaitStanza(e -> e.getLocalName().equals("features"));
        String plain = Base64.getEncoder().encodeToString(("\0" + user + "\0" + password).getBytes(StandardCharsets.UTF_8));
        send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain + "</auth>");
        Element outcome = awaitStanza(e -> e.getLocalName().equals("success") || e.getLocalName().equals("failure"));
        if (!outcome.getLocalName().equals("success")) {
            throw new IllegalStateException("SASL failed for " + user);
        }
        collect(parse(post("<body rid='" + nextRid() + "' sid='" + sid + "' to='" + domain
                + "' xml:lang='en' xmpp:restart='true' xmlns='" + NS + "' xmlns:xmpp='urn:xmpp:xbosh'/>").body()));
        awaitStanza(e -> e.getLocalName().equals("features"));
        send("<iq type='set' id='bind_1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>" + resource + "</resource></bind></iq>");
        Element bound = awaitStanza(e -> e.getLocalName().equals("iq") && "bind_1".equals(e.getAttribute("id")));
        jid = bound.getElementsByTagNameNS("urn:ietf:params:xml:ns:xmpp-bind", "jid").item(0).getTextContent();
        if (presence) {
            send("<presence xmlns='jabber:client'/>");
        }
        return this;
    }

    /** Sends stanzas in one request and keeps whatever the answer brings. */
    public Answer send(String stanzas) throws Exception {
        Answer answer = post(wrap(nextRid(), stanzas));
        collect(parse(answer.body()));
        return answer;
    }

    public String wrap(long requestRid, String stanzas) {
        return "<body rid='" + requestRid + "' sid='" + sid + "' xmlns='" + NS + "'>" + stanzas + "</body>";
    }

    /**
     * Sends a chat message. Like a web client, it does not wait for the answer: ejabberd holds a request that
     * carries stanzas too, until it has something for this user or {@code wait} passes.
     */
    public CompletableFuture<Answer> sendChat(String to, String text) {
        return postAsync(wrap(nextRid(), chat(to, text)));
    }

    public static String chat(String to, String text) {
        return "<message to='" + to + "' type='chat' xmlns='jabber:client'><body>" + text + "</body></message>";
    }

    /** Starts an empty long poll; it completes when the server has something or {@code wait} passes. */
    public CompletableFuture<Answer> poll() {
        return postAsync(wrap(nextRid(), ""));
    }

    /** Polls until a stanza matching {@code wanted} arrives (or 30 s pass). */
    public Element awaitStanza(Predicate<Element> wanted) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            for (Element e : received) {
                if (wanted.test(e)) {
                    received.remove(e);
                    return e;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no such stanza within 30 s; got " + received.size() + " others");
            }
            Answer answer = post(wrap(nextRid(), ""));
            if (answer.status() != 200) {
                throw new AssertionError("poll failed: " + answer);
            }
            collect(parse(answer.body()));
        }
    }

    public void take(Answer answer) throws Exception {
        collect(parse(answer.body()));
    }

    public List<String> chatBodies() {
        List<String> texts = new ArrayList<>();
        for (Element e : received) {
            if (e.getLocalName().equals("message")) {
                Node body = e.getElementsByTagNameNS("jabber:client", "body").item(0);
                if (body != null) {
                    texts.add(body.getTextContent());
                }
            }
        }
        return texts;
    }

    public void clear() {
        received.clear();
    }

    public Answer terminate() throws Exception {
        return post("<body rid='" + nextRid() + "' sid='" + sid + "' type='terminate' xmlns='" + NS
                + "'><presence type='unavailable' xmlns='jabber:client'/></body>");
    }

    public Answer post(String body) throws Exception {
        return postAsync(body).get();
    }

    public CompletableFuture<Answer> postAsync(String body) {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url.get())).timeout(Duration.ofSeconds(120))
                .header("Content-Type", "text/xml; charset=utf-8")
                .POST(HttpRequest.BodyPublishers.ofString(body));
        headers.forEach(request::header);
        return http.sendAsync(request.build(), HttpResponse.BodyHandlers.ofString())
                .thenApply(r -> new Answer(r.statusCode(), r.body(), r.headers()));
    }

    private void collect(Element body) {
        for (Node n = body.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e) {
                received.add(e);
            }
        }
    }

    public static Element parse(String xml) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        Document document = factory.newDocumentBuilder().parse(new ByteArrayInputStream(xml.getBytes(StandardCharsets.UTF_8)));
        return document.getDocumentElement();
    }
}
