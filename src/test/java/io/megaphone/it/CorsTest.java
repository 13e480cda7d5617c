// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * CORS on the BOSH port, as browsers on another origin see it: preflights answered by the ECM, the allow headers on
 * ejabberd's answers, exact origins (never {@code *}) when credentials are allowed, nothing for other origins.
 */
class CorsTest {

    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    static HttpResponse<String> preflight(int port, String origin) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/http-bind"))
                .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type")
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static HttpResponse<String> sessionCreate(int port, String origin) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/http-bind"))
                .POST(HttpRequest.BodyPublishers.ofString(RealStack.SESSION_CREATE.formatted(4242)))
                .header("Origin", origin).header("Content-Type", "text/plain; charset=utf-8")
                .timeout(Duration.ofSeconds(20)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0", "megaphone.link.links-per-node=1",
        "megaphone.edge.cors.allowed-origins=https://chat.example.org",
        "megaphone.edge.cors.allow-credentials=true", "megaphone.edge.cors.max-age=10m"})
    class ExactOriginsWithCredentials extends RealEcmTest {

        @Test
        void aPreflightFromAnAllowedOriginNamesThatOriginAndAllowsCredentials() throws Exception {
            HttpResponse<String> answer = preflight(port, "https://chat.example.org");
            assertThat(answer.statusCode()).isEqualTo(200);
            assertThat(answer.headers().firstValue("access-control-allow-origin")).hasValue("https://chat.example.org");
            assertThat(answer.headers().firstValue("access-control-allow-credentials")).hasValue("true");
            assertThat(answer.headers().firstValue("access-control-allow-methods").orElse("")).contains("POST");
            assertThat(answer.headers().firstValue("access-control-max-age")).hasValue("600");
            assertThat(answer.headers().allValues("vary").toString()).contains("Origin");
        }

        @Test
        void ejabberdsAnswerCarriesTheExactOrigin() throws Exception {
            HttpResponse<String> answer = sessionCreate(port, "https://chat.example.org");
            assertThat(answer.statusCode()).isEqualTo(200);
            assertThat(answer.body()).contains("sid=");
            assertThat(answer.headers().firstValue("access-control-allow-origin")).hasValue("https://chat.example.org");
            assertThat(answer.headers().firstValue("access-control-allow-credentials")).hasValue("true");
        }

        @Test
        void anotherOriginGetsNoAllowHeadersAndNothingIsForwarded() throws Exception {
            HttpResponse<String> preflight = preflight(port, "https://evil.example.net");
            assertThat(preflight.headers().firstValue("access-control-allow-origin")).isEmpty();
            HttpResponse<String> post = sessionCreate(port, "https://evil.example.net");
            assertThat(post.headers().firstValue("access-control-allow-origin")).isEmpty();
            assertThat(post.body()).doesNotContain("sid=").doesNotContainIgnoringCase("<html");
        }
    }

    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0", "megaphone.link.links-per-node=1"})
    class AnyOriginByDefault extends RealEcmTest {

        @Test
        void anyOriginIsAllowedWithoutCredentials() throws Exception {
            HttpResponse<String> answer = sessionCreate(port, "https://anywhere.example.com");
            assertThat(answer.statusCode()).isEqualTo(200);
            assertThat(answer.headers().firstValue("access-control-allow-origin")).hasValue("*");
            assertThat(answer.headers().firstValue("access-control-allow-credentials")).isEmpty();
            HttpResponse<String> preflight = preflight(port, "https://anywhere.example.com");
            assertThat(preflight.statusCode()).isEqualTo(200);
            assertThat(preflight.headers().firstValue("access-control-allow-origin")).hasValue("*");
        }
    }
}
