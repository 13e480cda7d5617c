// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.awaitility.Awaitility.await;

import io.megaphone.link.LinkPool;
import java.time.Duration;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Base of the tests that run the real ECM on a real port (annotate the subclass with
 * {@code @SpringBootTest(webEnvironment = RANDOM_PORT, properties = {"management.server.port=0", …})}) linked to
 * the shared private ejabberd.
 */
public abstract class RealEcmTest {

    /**
     * Every test client comes from 127.0.0.1, and test classes with the same properties share one ECM: lift the
     * per-client session pacing out of their way (AdmissionTest checks it on its own ECM).
     */
    public static final String MANY_SESSIONS_PER_CLIENT =
            "megaphone.edge.admission.sessions-per-second-per-client=100000";
    public static final String MANY_SESSIONS_BURST = "megaphone.edge.admission.sessions-burst-per-client=100000";

    @DynamicPropertySource
    static void linkToSharedEjabberd(DynamicPropertyRegistry registry) {
        RealStack.linkToSharedEjabberd(registry);
    }

    @LocalServerPort
    protected int port;

    @Autowired
    protected LinkPool pool;

    /** The ECM's BOSH endpoint. */
    protected String boshUrl() {
        return "http://127.0.0.1:" + port + "/http-bind";
    }

    /** Waits until this many links are authenticated and take requests. */
    protected void awaitLinks(int links) {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == links);
    }
}
