// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Issue 13's race, for {@link RidOrderTest} and the cluster test: one session per gap; each sends rid N+1 (a ping)
 * and, {@code gap} ms later on another connection, rid N (an empty poll), as a client with {@code requests='2'}
 * does. The sessions are one user's, each with its own resource, and send no presence: nothing reaches a session
 * unasked (a stanza for the client would make ejabberd answer N and take a parked N+1 up again, hiding the bug).
 *
 * <p>Stuck: N+1 has no answer {@code wait} + 1.5 s after it was sent (ejabberd 23.01 answers N at {@code wait},
 * and a parked N+1 only when the session ends, after {@code max_inactivity}).
 */
public final class RidRace {

    /**
     * Stuck: the gaps (ms) of the sessions whose N+1 got no answer in time. Correct: both answered 200, no
     * terminate, the pong in one of them. Survived: the next request answered without a terminate. Wrong: what
     * the N+1 of the answered but not correct sessions got.
     */
    public record Outcome(List<Integer> stuck, int correct, int survived, List<String> wrong) {

        /** Sessions stuck or not answered correctly or ended: lost to the client. */
        public int lost(int sessions) {
            return sessions - Math.min(correct, survived);
        }
    }

    private RidRace() {
    }

    /**
     * Logs one session per gap in at {@code createUrl}, then races: N+1 to {@code nPlusOneUrl}, N to {@code nUrl};
     * a session that was not stuck then sends one more ping to {@code nPlusOneUrl} (it survived if that is
     * answered without a terminate).
     */
    public static Outcome run(String createUrl, String nPlusOneUrl, String nUrl, String user, String password,
            String domain, String label, int[] gapsMs, int waitSeconds) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(gapsMs.length);
        try {
            List<AtomicReference<String>> urls = new ArrayList<>();
            List<CompletableFuture<BoshTestClient>> logins = new ArrayList<>();
            for (int i = 0; i < gapsMs.length; i++) {
                AtomicReference<String> url = new AtomicReference<>(createUrl);
                urls.add(url);
                String resource = label + i;
                logins.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        return new BoshTestClient(url::get, domain).login(user, password, waitSeconds, resource, false);
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }, pool));
            }
            List<BoshTestClient> clients = new ArrayList<>();
            for (CompletableFuture<BoshTestClient> login : logins) {
                clients.add(login.get(60, TimeUnit.SECONDS));
            }

            List<CompletableFuture<Pair>> races = new ArrayList<>();
            for (int i = 0; i < clients.size(); i++) {
                BoshTestClient client = clients.get(i);
                AtomicReference<String> url = urls.get(i);
                int gap = gapsMs[i];
                races.add(CompletableFuture.supplyAsync(() -> {
                    long n = client.nextRid();
                    long n1 = client.nextRid();
                    url.set(nPlusOneUrl);
                    CompletableFuture<BoshTestClient.Answer> second = client.postAsync(client.wrap(n1, ping("race")));
                    sleep(gap);
                    url.set(nUrl);
                    CompletableFuture<BoshTestClient.Answer> first = client.postAsync(client.wrap(n, ""));
                    url.set(nPlusOneUrl);
                    return new Pair(first, second);
                }, pool));
            }
            long deadline = System.nanoTime() + Duration.ofMillis(waitSeconds * 1000L + 1500).toNanos();
            List<Integer> stuck = new ArrayList<>();
            List<String> wrong = new ArrayList<>();
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
                    stuck.add(gapsMs[i]);
                    continue;
                }
                if (answeredWithPong(first, second, "race")) {
                    correct++;
                } else {
                    wrong.add(second.status() + " " + second.body().substring(0, Math.min(160, second.body().length())));
                }
                BoshTestClient client = clients.get(i);
                BoshTestClient.Answer next = client.postAsync(client.wrap(client.nextRid(), ping("after")))
                        .get(waitSeconds + 2L, TimeUnit.SECONDS);
                if (next.status() == 200 && !next.body().contains("type='terminate'")) {
                    survived++;
                }
            }
            return new Outcome(stuck, correct, survived, wrong);
        } finally {
            pool.shutdownNow();
        }
    }

    private record Pair(CompletableFuture<BoshTestClient.Answer> first,
            CompletableFuture<BoshTestClient.Answer> second) {
    }

    /** A ping iq with id {@code id}: ejabberd's mod_ping answers it with a result of the same id. */
    public static String ping(String id) {
        return "<iq type='get' id='" + id + "' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>";
    }

    /** Both answered 200, neither a terminate, and the pong of {@code id} in one of them. */
    public static boolean answeredWithPong(BoshTestClient.Answer first, BoshTestClient.Answer second, String id) {
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
