// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Malformed and hostile HTTP input at the edge: each gets its documented answer — a well-formed BOSH terminate or
 * a short plain answer with a proper status, never HTML, never a stack trace, never a 5xx for the client's fault —
 * and a chat running through the same ECM and ejabberd carries on.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class MalformedInputTest extends RealEcmTest {

    private static final String NS = "http://jabber.org/protocol/httpbind";
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @BeforeEach
    void linksUp() {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 1);
    }

    private HttpResponse<String> send(String method, String path, String contentType, byte[] body) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofByteArray(body));
        if (contentType != null) {
            request.header("Content-Type", contentType);
        }
        return HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** Every answer: a proper status, a short body that is never HTML nor a stack trace. */
    private static void wellFormed(HttpResponse<String> response) throws Exception {
        String body = response.body();
        String type = response.headers().firstValue("content-type").orElse("");
        assertThat(body).doesNotContainIgnoringCase("<html").doesNotContain("Exception").doesNotContain("\tat ");
        assertThat(body.length()).isLessThan(4096);
        if (type.contains("xml") && !body.isEmpty()) {
            assertThat(BoshTestClient.parse(body).getLocalName()).isEqualTo("body");
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        empty body                 | POST | text/xml; charset=utf-8 | <empty>                                           | 400 | bad-request
        not XML                    | POST | text/xml                | junk                                              | 400 | bad-request
        truncated start tag        | POST | text/xml                | <body rid='1' xmlns='NS'                          | 400 | bad-request
        wrong root                 | POST | text/xml                | <stream rid='1' xmlns='NS'/>                      | 400 | bad-request
        wrong namespace            | POST | text/xml                | <body rid='1' xmlns='jabber:client'/>             | 400 | bad-request
        no namespace               | POST | text/xml                | <body rid='1'/>                                   | 400 | bad-request
        rid not a number           | POST | text/xml                | <body rid='x' xmlns='NS'/>                        | 400 | bad-request
        rid out of range           | POST | text/xml                | <body rid='99999999999999999999' xmlns='NS'/>     | 400 | bad-request
        entity bomb                | POST | text/xml                | <!DOCTYPE b [<!ENTITY a 'aaaa'>]><body xmlns='NS'>&a;</body> | 400 | bad-request
        JSON content type          | POST | application/json        | {"rid":1}                                         | 415 | bad-request
        latin-1 charset            | POST | text/xml; charset=iso-8859-1 | <body rid='1' xmlns='NS'/>                   | 415 | bad-request
        form data                  | POST | multipart/form-data; boundary=x | <body rid='1' xmlns='NS'/>                | 415 | bad-request
        sid longer than a frame    | POST | text/xml                | <body rid='5' sid='LONGSID' xmlns='NS'/>          | 400 | bad-request
        unknown session            | POST | text/xml; charset=utf-8 | <body rid='5' sid='no-such-sid' xmlns='NS'/>      | 200 | item-not-found
        """)
    void malformedBodiesGetTheirDocumentedAnswer(String name, String method, String contentType, String body,
                                                int status, String condition) throws Exception {
        String xml = body.equals("<empty>") ? "" : body.replace("'NS'", "'" + NS + "'")
                .replace("LONGSID", "s".repeat(300));
        HttpResponse<String> response = send(method, "/http-bind", contentType, utf8(xml));
        assertThat(response.statusCode()).as(name).isEqualTo(status);
        wellFormed(response);
        assertThat(BoshTestClient.parse(response.body()).getAttribute("condition")).isEqualTo(condition);
    }

    @Test
    void invalidUtf8InTheStartTagIsABadRequest() throws Exception {
        byte[] body = utf8("<body rid='1' to='XX' xmlns='" + NS + "'/>");
        int at = new String(body, StandardCharsets.ISO_8859_1).indexOf("XX");
        body[at] = (byte) 0xC3;
        body[at + 1] = (byte) 0x28;
        HttpResponse<String> response = send("POST", "/http-bind", "text/xml; charset=utf-8", body);
        assertThat(response.statusCode()).isEqualTo(400);
        wellFormed(response);
    }

    @Test
    void anOversizedBodyIs413BeforeAnythingIsForwarded() throws Exception {
        byte[] body = utf8("<body rid='1' xmlns='" + NS + "'>" + "x".repeat(300_000) + "</body>");
        // a connection of its own: the shared client may pick a pooled one the ECM has just closed (seen as "header
        // parser received no bytes" in 2 of 7 full runs), and a POST is not retried
        HttpResponse<String> response = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build().send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/http-bind"))
                        .timeout(Duration.ofSeconds(30)).header("Content-Type", "text/xml")
                        .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(413);
        wellFormed(response);
    }

    @Test
    void deepNestingAndHugeAttributesReachEjabberdWhichAnswersWellFormed() throws Exception {
        String deep = "<body rid='7' sid='no-such-sid' xmlns='" + NS + "'>" + "<a>".repeat(20_000) + "</body>";
        HttpResponse<String> nested = send("POST", "/http-bind", "text/xml", utf8(deep));
        assertThat(nested.statusCode()).isLessThan(500);
        wellFormed(nested);
        assertThat(nested.body()).as("never an empty body, even where ejabberd gives none").isNotEmpty();
        String huge = "<body rid='8' sid='no-such-sid' huge='" + "A".repeat(100_000) + "' xmlns='" + NS + "'/>";
        HttpResponse<String> attribute = send("POST", "/http-bind", "text/xml", utf8(huge));
        assertThat(attribute.statusCode()).isLessThan(500);
        wellFormed(attribute);
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource(delimiter = '|', textBlock = """
        GET     | /http-bind | 200
        HEAD    | /http-bind | 200
        PUT     | /http-bind | 405
        DELETE  | /bosh      | 405
        POST    | /elsewhere | 404
        GET     | /          | 404
        """)
    void otherMethodsAndPathsGetAShortPlainAnswer(String method, String path, int status) throws Exception {
        boolean bodiless = method.equals("GET") || method.equals("HEAD");
        HttpResponse<String> response = send(method, path, "text/xml", bodiless ? null : utf8("<x/>"));
        assertThat(response.statusCode()).isEqualTo(status);
        assertThat(response.headers().firstValue("content-type")).hasValueSatisfying(
                type -> assertThat(type).startsWith("text/plain"));
        wellFormed(response);
    }

    /** A browser that asks for HTML still gets plain text (Boot's error handler would render an HTML page). */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource(delimiter = '|', textBlock = """
        GET     | /nowhere   | 404
        PUT     | /http-bind | 405
        POST    | /elsewhere | 404
        """)
    void aBrowserAskingForHtmlGetsPlainText(String method, String path, int status) throws Exception {
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .method(method, method.equals("GET") ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString("<x/>"))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(status);
        assertThat(response.headers().firstValue("content-type")).hasValueSatisfying(
                type -> assertThat(type).startsWith("text/plain"));
        wellFormed(response);
    }

    /** A chunked body (no Content-Length) over the limit: the bounded read stops it, 413, nothing forwarded. */
    @Test
    void aChunkedBodyOverTheLimitIs413() throws Exception {
        byte[] body = utf8("<body rid='1' xmlns='" + NS + "'>" + "x".repeat(300_000) + "</body>");
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + port + "/http-bind"))
                .timeout(Duration.ofSeconds(30)).header("Content-Type", "text/xml")
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(body)))
                .build(), HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(413);
        wellFormed(response);
    }

    /** Past the request-line and header limits Reactor Netty answers 414 / 431 itself: short, never HTML, counted. */
    @Test
    void anOverlongUriOrHeaderGetsItsStatus() throws Exception {
        double badBefore = badRequests();
        HttpResponse<String> longUri = send("GET", "/http-bind?" + "q".repeat(5_000), null, null);
        assertThat(longUri.statusCode()).isEqualTo(414);
        wellFormed(longUri);
        HttpResponse<String> hugeHeader = HTTP.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + port + "/http-bind"))
                .timeout(Duration.ofSeconds(30)).header("X-Filler", "f".repeat(20_000))
                .POST(HttpRequest.BodyPublishers.ofString("<body rid='1' xmlns='" + NS + "'/>")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(hugeHeader.statusCode()).isEqualTo(431);
        wellFormed(hugeHeader);
        assertThat(badRequests() - badBefore).as("counted as bad requests").isEqualTo(2);
    }

    @org.springframework.beans.factory.annotation.Autowired
    io.micrometer.core.instrument.MeterRegistry meters;

    private double badRequests() {
        return meters.get("megaphone.edge.requests").tag("outcome", "bad_request").counter().count();
    }

    @Test
    void aChatThroughTheSameEcmCarriesOnAfterTheBarrage() throws Exception {
        String url = "http://127.0.0.1:" + port + "/http-bind";
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(url, "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        BoshTestClient bobClient = new BoshTestClient(url, "localhost").login(bob, SharedEjabberd.PASSWORD, 10);
        for (int i = 0; i < 50; i++) {
            send("POST", "/http-bind", "text/xml", utf8("<body rid='" + i + "' sid='" + bobClient.sid() + "x'/>"));
            send("POST", "/http-bind", "text/xml", utf8("garbage " + i));
        }
        bobClient.clear();
        CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
        aliceClient.sendChat(bob + "@localhost", "after the barrage");
        assertThat(held.get(10, TimeUnit.SECONDS).body()).contains("after the barrage");
        aliceClient.terminate();
        bobClient.terminate();
    }
}
