// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 13: a client with {@code requests='2'} sends rid N+1 (a stanza) a moment before rid N (an empty poll), on
 * its second connection. ejabberd 23.01 parks N+1 behind the held N and never takes it up again
 * ({@code ejabberd_bosh:active1/3}): the session is stuck. The same race ({@link RidRace}), at gaps from 0 to
 * 50 ms, once through the real ECM (two links) and mod_megaphone, once against ejabberd's own BOSH, side by side in
 * one run. The two-node variant is in {@code io.megaphone.cluster.ClusterTest}.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class RidOrderTest extends RealEcmTest {

    /** The sessions' BOSH wait, in seconds. */
    static final int WAIT = 2;
    /**
     * One session per gap between sending N+1 and sending N, in ms: ten of them 10 ms or more, where ejabberd
     * direct always loses the race; at 0 and 5 ms it sometimes wins (N+1's connection may be slower).
     */
    public static final int[] GAPS_MS = {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 50};

    @Test
    void nPlusOneSentBeforeAnEmptyPollStucksNoSessionThroughMegaphoneAndEverySessionOnEjabberdDirect()
            throws Exception {
        awaitLinks(2);
        String user = SharedEjabberd.newUser("race");
        String direct = SharedEjabberd.get().directBoshUrl();
        RidRace.Outcome viaMegaphone = RidRace.run(boshUrl(), boshUrl(), boshUrl(), user, SharedEjabberd.PASSWORD,
                PrivateEjabberd.DOMAIN, "megaphone", GAPS_MS, WAIT);
        RidRace.Outcome viaDirect = RidRace.run(direct, direct, direct, user, SharedEjabberd.PASSWORD,
                PrivateEjabberd.DOMAIN, "direct", GAPS_MS, WAIT);
        System.out.printf("[rid order] N+1 sent 0-50 ms before an empty poll N, %d sessions each: "
                + "megaphone stuck %d, answered correctly %d, survived %d, lost %d; ejabberd direct stuck %d (gaps"
                + " %s), lost %d%n", GAPS_MS.length, viaMegaphone.stuck().size(), viaMegaphone.correct(),
                viaMegaphone.survived(), viaMegaphone.lost(GAPS_MS.length), viaDirect.stuck().size(),
                viaDirect.stuck(), viaDirect.lost(GAPS_MS.length));

        assertThat(viaMegaphone.stuck()).as("sessions stuck through megaphone (gaps in ms)").isEmpty();
        assertThat(viaMegaphone.correct()).as("sessions whose N and N+1 were both answered, with the pong")
                .isEqualTo(GAPS_MS.length);
        assertThat(viaMegaphone.survived()).as("sessions that answer the next request").isEqualTo(GAPS_MS.length);
        assertThat(viaDirect.stuck()).as("ejabberd direct sticks every session whose N+1 led by 10 ms or more")
                .filteredOn(gap -> gap >= 10).hasSize(10);
    }
}
