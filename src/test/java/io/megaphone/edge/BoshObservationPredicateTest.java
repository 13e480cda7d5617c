// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.observation.ObservationPredicate;
import java.net.URI;
import java.util.HashMap;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.http.HttpMethod;
import org.springframework.http.server.reactive.observation.ServerRequestObservationContext;
import org.springframework.mock.http.server.reactive.MockServerHttpRequest;
import org.springframework.mock.http.server.reactive.MockServerHttpResponse;

/**
 * Spring's generic {@code http.server.requests} observation stays off every path routing takes to a BOSH route
 * (it would cost each held request about 0.9 KB; the edge's own meters count them), and on for everything else.
 */
class BoshObservationPredicateTest {

    private final ObservationPredicate predicate =
            EdgeConfiguration.boshRequestsNotObserved(List.of("/http-bind", "/bosh"));

    @ParameterizedTest(name = "{0}: observed {1}")
    @CsvSource(delimiter = '|', textBlock = """
        /http-bind        | false
        /bosh             | false
        /http-bind;x=1    | false
        /http%2Dbind      | false
        /bo%73h;a=b       | false
        /demo/            | true
        /http-bind/extra  | true
        /elsewhere;x=1    | true
        /http%2Dbin       | true
        """)
    void boshPathsAreNotObservedOthersAre(String path, boolean observed) {
        ServerRequestObservationContext context = new ServerRequestObservationContext(
                MockServerHttpRequest.method(HttpMethod.POST, URI.create("http://127.0.0.1" + path)).build(), new MockServerHttpResponse(), new HashMap<>());
        assertThat(predicate.test("http.server.requests", context)).isEqualTo(observed);
    }
}
