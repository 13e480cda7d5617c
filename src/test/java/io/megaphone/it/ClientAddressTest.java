// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Nested;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The address ejabberd records for a BOSH session (what its ACLs and {@code user_sessions_info} see) is the
 * client's: the socket peer, or what a trusted proxy reports — and never what an untrusted peer claims.
 */
class ClientAddressTest {

    static void linkToRealEjabberd(DynamicPropertyRegistry registry) {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + ejabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
    }

    /** What each case shares: the ECM on its port, linked to the shared real ejabberd. */
    abstract static class EcmOnTheSharedEjabberd {

        @DynamicPropertySource
        static void link(DynamicPropertyRegistry registry) {
            linkToRealEjabberd(registry);
        }

        @LocalServerPort
        int port;

        /** Logs a new user in with this X-Forwarded-For; what ejabberd records of the session. */
        String sessionInfo(String forwardedFor) throws Exception {
            String user = SharedEjabberd.newUser("ip");
            BoshTestClient client = new BoshTestClient("http://127.0.0.1:" + port + "/http-bind",
                    PrivateEjabberd.DOMAIN).withHeader("X-Forwarded-For", forwardedFor)
                    .login(user, SharedEjabberd.PASSWORD, 10);
            try {
                return SharedEjabberd.get().ctl("user_sessions_info", user, PrivateEjabberd.DOMAIN);
            } finally {
                client.terminate();
            }
        }
    }

    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
            properties = {"management.server.port=0", "megaphone.link.links-per-node=1"})
    class WithNoTrustedProxy extends EcmOnTheSharedEjabberd {

        @Test
        void aSpoofedForwardedForIsIgnoredAndEjabberdSeesTheSocketPeer() throws Exception {
            String info = sessionInfo("203.0.113.7");
            assertThat(info).contains("127.0.0.1").doesNotContain("203.0.113.7");
        }
    }

    /**
     * On a cloud platform (Kubernetes: the Helm chart) Boot would switch Reactor Netty's forwarded-header handling on
     * by itself, and that believes any client's X-Forwarded-For. The ECM keeps it off.
     */
    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
            properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                "spring.main.cloud-platform=kubernetes"})
    class OnKubernetesWithNoTrustedProxy extends EcmOnTheSharedEjabberd {

        @Test
        void aSpoofedForwardedForIsIgnoredThere() throws Exception {
            String info = sessionInfo("203.0.113.8");
            assertThat(info).contains("127.0.0.1").doesNotContain("203.0.113.8");
        }
    }

    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
            properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                "megaphone.edge.trusted-proxies=127.0.0.0/8"})
    class BehindATrustedProxy extends EcmOnTheSharedEjabberd {

        @Test
        void theProxysForwardedForIsTheAddressEjabberdRecords() throws Exception {
            String info = sessionInfo("203.0.113.7");
            assertThat(info).contains("203.0.113.7");
        }
    }
}
