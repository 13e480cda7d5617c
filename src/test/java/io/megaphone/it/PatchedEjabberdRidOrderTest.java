// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Issue 21: the fix in ejabberd itself, {@code ejabberd/upstream/ejabberd_bosh-rid-order.patch}. {@code make -C
 * ejabberd/upstream} applies it to the installed ejabberd's {@code ejabberd_bosh} (from the beam's debug_info), and a
 * private ejabberd loads that beam ahead of the stock one ({@code EJ_EXTRA_EBIN}). Against ejabberd's own BOSH, with
 * no Megaphone in front, side by side with the stock shared ejabberd in one run:
 * <ul>
 * <li>the race of {@link RidOrderTest} ({@link RidRace}: rid N+1 sent 0-50 ms before an empty poll N): the patched
 * ejabberd sticks no session, the stock one every session whose N+1 led by 10 ms or more;</li>
 * <li>a re-sent copy of a parked N+1: the patched ejabberd answers the first copy empty, the second one with the
 * pong, and the session goes on; the stock one crashes the session ({@code key_exists}).</li>
 * </ul>
 * Nothing here is skipped: a build or start that fails fails the test with its output.
 */
class PatchedEjabberdRidOrderTest {

    private static final Path UPSTREAM = Path.of("ejabberd/upstream").toAbsolutePath();
    private static final Path PATCHED_EBIN = UPSTREAM.resolve("ebin");

    private static PrivateEjabberd patched;
    private static String patchedUser;

    @BeforeAll
    static void startPatchedEjabberd() throws Exception {
        String built = PrivateEjabberd.run(new ProcessBuilder("make", "-s", "-B", "-C", UPSTREAM.toString()), 120);
        System.out.print("[upstream patch] " + built);
        assertThat(PATCHED_EBIN.resolve("ejabberd_bosh.beam")).as("the patched beam make built").isRegularFile();
        patched = PrivateEjabberd.start(Map.of("EJ_EXTRA_EBIN", PATCHED_EBIN.toString()));
        patchedUser = "race-patched";
        patched.register(patchedUser, SharedEjabberd.PASSWORD);
    }

    @AfterAll
    static void stopPatchedEjabberd() {
        if (patched != null) {
            patched.close();
        }
    }

    @Test
    void nPlusOneSentBeforeAnEmptyPollStucksNoSessionOnThePatchedEjabberdAndTenOnTheStockOne() throws Exception {
        String direct = patched.directBoshUrl();
        RidRace.Outcome viaPatched = RidRace.run(direct, direct, direct, patchedUser, SharedEjabberd.PASSWORD,
                PrivateEjabberd.DOMAIN, "patched", RidOrderTest.GAPS_MS, RidOrderTest.WAIT);
        String stockUser = SharedEjabberd.newUser("race-stock");
        String stock = SharedEjabberd.get().directBoshUrl();
        RidRace.Outcome viaStock = RidRace.run(stock, stock, stock, stockUser, SharedEjabberd.PASSWORD,
                PrivateEjabberd.DOMAIN, "stock", RidOrderTest.GAPS_MS, RidOrderTest.WAIT);
        int sessions = RidOrderTest.GAPS_MS.length;
        System.out.printf("[upstream patch] N+1 sent 0-50 ms before an empty poll N, ejabberd's own BOSH, %d sessions"
                + " each: patched stuck %d, answered correctly %d, survived %d, lost %d; stock stuck %d (gaps %s),"
                + " lost %d%n", sessions, viaPatched.stuck().size(), viaPatched.correct(), viaPatched.survived(),
                viaPatched.lost(sessions), viaStock.stuck().size(), viaStock.stuck(), viaStock.lost(sessions));

        assertThat(patched.eval("code:is_loaded(ejabberd_bosh)"))
                .as("the ejabberd_bosh that served the patched sessions")
                .contains("/extra-ebin/ejabberd_bosh.beam");
        assertThat(SharedEjabberd.get().eval("code:is_loaded(ejabberd_bosh)"))
                .as("the ejabberd_bosh that served the stock sessions").doesNotContain("extra-ebin");
        assertThat(viaPatched.stuck()).as("sessions stuck on the patched ejabberd (gaps in ms)").isEmpty();
        assertThat(viaPatched.wrong()).as("what the not correctly answered N+1 got").isEmpty();
        assertThat(viaPatched.correct()).as("sessions whose N and N+1 were both answered, with the pong")
                .isEqualTo(sessions);
        assertThat(viaPatched.survived()).as("sessions that answer the next request").isEqualTo(sessions);
        assertThat(viaStock.stuck()).as("the stock ejabberd sticks every session whose N+1 led by 10 ms or more")
                .filteredOn(gap -> gap >= 10).hasSize(10);
    }

    @Test
    void aReSentCopyOfAParkedRidReplacesItOnThePatchedEjabberdAndCrashesTheSessionOnTheStockOne() throws Exception {
        Duplicate onPatched = parkTwoCopiesThenSendN(patched.directBoshUrl(), patchedUser, "dup-patched");
        String stockUser = SharedEjabberd.newUser("dup-stock");
        Duplicate onStock = parkTwoCopiesThenSendN(SharedEjabberd.get().directBoshUrl(), stockUser, "dup-stock");
        System.out.printf("[upstream patch] two copies of a parked N+1, then N: patched %s; stock %s%n", onPatched,
                onStock);

        assertThat(onPatched.first().status()).as("the first copy, replaced").isEqualTo(200);
        assertThat(onPatched.first().body()).as("the first copy, replaced: an empty body")
                .doesNotContain("type='terminate'").doesNotContain("<iq");
        assertThat(RidRace.answeredWithPong(onPatched.n(), onPatched.second(), "dup"))
                .as("N and the second copy of N+1 answered, the pong in one of them: %s", onPatched).isTrue();
        assertThat(onPatched.survived()).as("the session on the patched ejabberd goes on").isTrue();
        assertThat(patched.log()).doesNotContain("key_exists");

        assertThat(onStock.survived()).as("the session on the stock ejabberd ends").isFalse();
        // the crash report reaches the log file a moment after the answers
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                assertThat(SharedEjabberd.get().log()).as("the stock session's crash").contains("key_exists"));
    }

    /** The answers to the two copies of N+1 and to N, and whether the session answered the next request. */
    private record Duplicate(BoshTestClient.Answer first, BoshTestClient.Answer second, BoshTestClient.Answer n,
            boolean survived) {

        @Override
        public String toString() {
            return "first copy " + brief(first) + ", second copy " + brief(second) + ", N " + brief(n)
                    + ", survived " + survived;
        }

        private static String brief(BoshTestClient.Answer answer) {
            String body = answer.body();
            return answer.status() + " " + body.substring(0, Math.min(120, body.length()));
        }
    }

    /**
     * N+1 (a ping), 100 ms later the same N+1 again (a client's retry), 100 ms later N (an empty poll); then one
     * more ping (survived: answered without a terminate).
     */
    private static Duplicate parkTwoCopiesThenSendN(String url, String user, String resource) throws Exception {
        BoshTestClient client = new BoshTestClient(url, PrivateEjabberd.DOMAIN)
                .login(user, SharedEjabberd.PASSWORD, RidOrderTest.WAIT, resource, false);
        long n = client.nextRid();
        long n1 = client.nextRid();
        String nPlusOne = client.wrap(n1, RidRace.ping("dup"));
        CompletableFuture<BoshTestClient.Answer> first = client.postAsync(nPlusOne);
        Thread.sleep(100);
        CompletableFuture<BoshTestClient.Answer> second = client.postAsync(nPlusOne);
        Thread.sleep(100);
        CompletableFuture<BoshTestClient.Answer> nAnswer = client.postAsync(client.wrap(n, ""));
        long timeout = RidOrderTest.WAIT + 5L;
        List<BoshTestClient.Answer> answers = List.of(first.get(timeout, TimeUnit.SECONDS),
                second.get(timeout, TimeUnit.SECONDS), nAnswer.get(timeout, TimeUnit.SECONDS));
        BoshTestClient.Answer next = client.postAsync(client.wrap(client.nextRid(), RidRace.ping("after")))
                .get(timeout, TimeUnit.SECONDS);
        boolean survived = next.status() == 200 && !next.body().contains("type='terminate'");
        return new Duplicate(answers.get(0), answers.get(1), answers.get(2), survived);
    }
}
