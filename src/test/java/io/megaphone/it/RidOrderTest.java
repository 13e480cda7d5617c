package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 13: a client with {@code requests='2'} sends rid N+1 (a stanza) a moment before rid N (an empty poll), on
 * its second connection. ejabberd 23.01 parks N+1 behind the held N and never takes it up again
 * ({@code ejabberd_bosh:active1/3}): the session is stuck. The same race, at gaps from 0 to 50 ms, once through
 * the real ECM (two links) and mod_megaphone, once against ejabberd's own BOSH, side by side in one run.
 *
 * <p>The sessions are one user's, each with its own resource, and send no presence: nothing reaches a session
 * unasked (a stanza for the client would make ejabberd answer N and take N+1 up again, hiding the bug).
 *
 * <p>Stuck: N+1 has no answer {@code wait} + 1.5 s after it was sent (ejabberd answers N at {@code wait}, and
 * N+1 only when the session ends, after {@code max_inactivity}).
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
    static final int[] GAPS_MS = {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 50};
    private static final ExecutorService POOL = Executors.newFixedThreadPool(GAPS_MS.length);

    @AfterAll
    static void stopPool() {
        POOL.shutdownNow();
    }

    @Test
    void nPlusOneSentBeforeAnEmptyPollStucksNoSessionThroughMegaphoneAndEverySessionOnEjabberdDirect()
            throws Exception {
        awaitLinks(2);
        String user = SharedEjabberd.newUser("race");
        Outcome megaphone = race(boshUrl(), user, "megaphone");
        Outcome direct = race(SharedEjabberd.get().directBoshUrl(), user, "direct");
        System.out.printf("[rid order] N+1 sent 0-50 ms before an empty poll N, %d sessions each: "
                + "megaphone stuck %d, answered correctly %d, survived %d; ejabberd direct stuck %d (%s)%n",
                GAPS_MS.length, megaphone.stuck().size(), megaphone.correct(), megaphone.survived(),
                direct.stuck().size(), direct.stuck());

        assertThat(megaphone.stuck()).as("sessions stuck through megaphone (gaps in ms)").isEmpty();
        assertThat(megaphone.correct()).as("sessions whose N and N+1 were both answered, with the pong")
                .isEqualTo(GAPS_MS.length);
        assertThat(megaphone.survived()).as("sessions that answer the next request").isEqualTo(GAPS_MS.length);
        assertThat(direct.stuck()).as("ejabberd direct sticks every session whose N+1 led by 10 ms or more")
                .filteredOn(gap -> gap >= 10).hasSize(10);
    }

    /** Stuck: the gaps (ms) of the sessions whose N+1 got no answer in time. */
    record Outcome(List<Integer> stuck, int correct, int survived) {
    }

    private Outcome race(String url, String user, String label) throws Exception {
        List<CompletableFuture<BoshTestClient>> logins = new ArrayList<>();
        for (int i = 0; i < GAPS_MS.length; i++) {
            String resource = label + i;
            logins.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return new BoshTestClient(url, PrivateEjabberd.DOMAIN)
                            .login(user, SharedEjabberd.PASSWORD, WAIT, resource, false);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }, POOL));
        }
        List<BoshTestClient> clients = new ArrayList<>();
        for (CompletableFuture<BoshTestClient> login : logins) {
            clients.add(login.get(60, TimeUnit.SECONDS));
        }

        List<CompletableFuture<Pair>> races = new ArrayList<>();
        for (int i = 0; i < clients.size(); i++) {
            BoshTestClient client = clients.get(i);
            int gap = GAPS_MS[i];
            races.add(CompletableFuture.supplyAsync(() -> {
                long n = client.nextRid();
                long n1 = client.nextRid();
                CompletableFuture<BoshTestClient.Answer> second = client.postAsync(client.wrap(n1, ping("race")));
                sleep(gap);
                CompletableFuture<BoshTestClient.Answer> first = client.postAsync(client.wrap(n, ""));
                return new Pair(first, second);
            }, POOL));
        }
        long deadline = System.nanoTime() + Duration.ofMillis(WAIT * 1000L + 1500).toNanos();
        List<Integer> stuck = new ArrayList<>();
        int correct = 0;
        int survived = 0;
        for (int i = 0; i < races.size(); i++) {
            Pair pair = races.get(i).get(10, TimeUnit.SECONDS);
            BoshTestClient.Answer second;
            BoshTestClient.Answer first;
            try {
                second = pair.second().get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                first = pair.first().get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                stuck.add(GAPS_MS[i]);
                continue;
            }
            if (answeredWithPong(first, second, "race")) {
                correct++;
            }
            BoshTestClient client = clients.get(i);
            BoshTestClient.Answer next = client.postAsync(client.wrap(client.nextRid(), ping("after")))
                    .get(WAIT + 2, TimeUnit.SECONDS);
            if (next.status() == 200 && !next.body().contains("type='terminate'")) {
                survived++;
            }
        }
        return new Outcome(stuck, correct, survived);
    }

    record Pair(CompletableFuture<BoshTestClient.Answer> first, CompletableFuture<BoshTestClient.Answer> second) {
    }

    static String ping(String id) {
        return "<iq type='get' id='" + id + "' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>";
    }

    /** Both answered 200, neither a terminate, and the pong of {@code id} in one of them. */
    static boolean answeredWithPong(BoshTestClient.Answer first, BoshTestClient.Answer second, String id) {
        return first.status() == 200 && second.status() == 200
                && !first.body().contains("type='terminate'") && !second.body().contains("type='terminate'")
                && (first.body() + second.body()).contains("id='" + id + "'");
    }

    private static void sleep(int ms) {
        if (ms > 0) {
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
