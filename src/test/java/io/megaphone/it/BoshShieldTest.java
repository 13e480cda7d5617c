// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 13's shields: where ejabberd 23.01's own BOSH answers wrongly or never, mod_megaphone answers per
 * XEP-0124. Each case runs through the real ECM and mod_megaphone, and shows ejabberd direct doing otherwise.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class BoshShieldTest extends RealEcmTest {

    private static final int WAIT = 5;

    @Test
    void aRidBelowTheWindowIsAnsweredItemNotFoundAtOnceAndTheSessionGoesOn() throws Exception {
        awaitLinks(2);
        String user = SharedEjabberd.newUser("stale");
        BoshTestClient client = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN)
                .login(user, SharedEjabberd.PASSWORD, WAIT, "m", false);
        long next = client.nextRid();
        long started = System.nanoTime();
        BoshTestClient.Answer stale = client.postAsync(client.wrap(next - 3, "")).get(2, TimeUnit.SECONDS);
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        assertThat(stale.status()).isEqualTo(200);
        assertThat(stale.body()).contains("type='terminate'").contains("condition='item-not-found'");
        // a stale copy must not end a live session (it may be a late duplicate of an answered request)
        BoshTestClient.Answer after = client.postAsync(client.wrap(next, RidRace.ping("still")))
                .get(WAIT + 2, TimeUnit.SECONDS);
        assertThat(after.body()).doesNotContain("type='terminate'");

        BoshTestClient direct = new BoshTestClient(SharedEjabberd.get().directBoshUrl(), PrivateEjabberd.DOMAIN)
                .login(user, SharedEjabberd.PASSWORD, WAIT, "d", false);
        long directNext = direct.nextRid();
        assertThatThrownBy(() -> direct.postAsync(direct.wrap(directNext - 3, "")).get(2, TimeUnit.SECONDS))
                .as("ejabberd direct holds a rid below its window without answering")
                .isInstanceOf(TimeoutException.class);
        System.out.printf("[shield] rid 3 below the next (ejabberd buffers the last 2): megaphone item-not-found in %d ms; "
                + "ejabberd direct no answer after 2 s%n", ms);
    }

    @Test
    void aSessionCreationForADomainEjabberdDoesNotServeIsHostUnknown() throws Exception {
        awaitLinks(2);
        String create = RealStack.SESSION_CREATE.formatted(4242L).replace("to='localhost'", "to='no-such-host.example'");
        BoshTestClient.Answer megaphone = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN).post(create);
        assertThat(megaphone.status()).isEqualTo(200);
        assertThat(megaphone.body()).contains("type='terminate'").contains("condition='host-unknown'");

        BoshTestClient.Answer direct = new BoshTestClient(SharedEjabberd.get().directBoshUrl(), PrivateEjabberd.DOMAIN)
                .post(create);
        assertThat(direct.body()).as("ejabberd direct").contains("condition='internal-server-error'");
    }
}
