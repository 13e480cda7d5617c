// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import io.megaphone.it.BoshTestClient;
import io.megaphone.it.PrivateEjabberd;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * Users chatting through one or more ECMs, with every message counted end to end. Users come in pairs: a sender
 * and a receiver. Each message's text is a unique id; receivers record every id they get, so a phase can tell
 * lost and duplicated messages apart.
 *
 * <p>Clients behave like Strophe.js: at most two requests outstanding (hold=1), rids in order; a request that
 * fails with a connection error or a 5xx is re-sent with the <em>same</em> body and rid, after a connection error
 * through the next ECM in the list (a load balancer's failover stand-in). Every attempt is bounded in time.
 */
final class ChatLoad implements AutoCloseable {

    static final int WAIT = 20;
    private static final Duration RETRY_WINDOW = Duration.ofSeconds(90);

    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(3)).build();
    private final List<String> urls;
    private final String prefix;
    private final String password;
    private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "chat-load");
        t.setDaemon(true);
        return t;
    });

    final Map<String, LongAdder> outcomes = new ConcurrentHashMap<>();
    final LongAdder attempts = new LongAdder();
    final LongAdder resends = new LongAdder();
    final LongAccumulator longestRequestMillis = new LongAccumulator(Math::max, 0);
    final Map<String, AtomicInteger> received = new ConcurrentHashMap<>();
    final Set<String> sent = ConcurrentHashMap.newKeySet();
    final List<String> failures = new CopyOnWriteArrayList<>();
    final List<Pair> pairs = new ArrayList<>();
    private volatile String phase = "warmup";
    private volatile boolean sending;
    private volatile boolean running = true;
    private final long messageIntervalMillis;

    final class User {
        final String name;
        volatile BoshTestClient client;
        volatile int ecm;
        volatile boolean terminated;
        volatile String terminateBody;
        volatile long terminatedAtNanos;

        User(String name, int ecm) {
            this.name = name;
            this.ecm = ecm;
        }

        String url() {
            return urls.get(Math.floorMod(ecm, urls.size()));
        }

        void terminated(String body) {
            if (!terminated) {
                terminateBody = body;
                terminatedAtNanos = System.nanoTime();
                terminated = true;
            }
        }
    }

    final class Pair {
        final int index;
        final User sender;
        final User receiver;
        final AtomicInteger seq = new AtomicInteger();

        Pair(int index, User sender, User receiver) {
            this.index = index;
            this.sender = sender;
            this.receiver = receiver;
        }
    }

    /**
     * {@code pairs} pairs of users {@code prefix1..prefix(2*pairs)} (registered already), spread over
     * {@code urls}; each sender sends one message every {@code messageIntervalMillis} while sending is on.
     */
    ChatLoad(List<String> urls, String prefix, String password, int pairCount, long messageIntervalMillis) {
        this.urls = new CopyOnWriteArrayList<>(urls);
        this.prefix = prefix;
        this.password = password;
        this.messageIntervalMillis = messageIntervalMillis;
        for (int i = 0; i < pairCount; i++) {
            pairs.add(new Pair(i, new User(prefix + (2 * i + 1), i), new User(prefix + (2 * i + 2), i + 1)));
        }
    }

    int users() {
        return pairs.size() * 2;
    }

    /** Logs every user in (8 at a time, each login tried up to 5 times) and starts their request loops. */
    void start() throws Exception {
        List<User> all = new ArrayList<>();
        for (Pair p : pairs) {
            all.add(p.sender);
            all.add(p.receiver);
        }
        ExecutorService logins = Executors.newFixedThreadPool(8);
        try {
            List<CompletableFuture<Void>> done = new ArrayList<>();
            for (User u : all) {
                done.add(CompletableFuture.runAsync(() -> login(u), logins));
            }
            CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(300, TimeUnit.SECONDS);
        } finally {
            logins.shutdownNow();
        }
        for (Pair p : pairs) {
            pool.execute(() -> senderLoop(p));
            pool.execute(() -> receiverLoop(p.receiver));
        }
    }

    private void login(User u) {
        for (int attempt = 1; ; attempt++) {
            try {
                u.client = new BoshTestClient(u::url, PrivateEjabberd.DOMAIN).login(u.name, password, WAIT);
                u.client.clear();
                return;
            } catch (Exception e) {
                if (attempt == 5) {
                    throw new IllegalStateException("login of " + u.name + " failed 5 times", e);
                }
                u.ecm++;
                try {
                    Thread.sleep(500L * attempt);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(ie);
                }
            }
        }
    }

    /** Starts a phase: messages sent from now on carry {@code name} in their id. */
    void startSending(String name) {
        phase = name;
        sending = true;
    }

    void stopSending() {
        sending = false;
    }

    private void count(String outcome) {
        outcomes.computeIfAbsent(outcome, k -> new LongAdder()).increment();
    }

    /**
     * Sends {@code body} for {@code u}, re-sending the same body after a connection error (through the next ECM)
     * or a 5xx, for at most {@link #RETRY_WINDOW}. Returns the first non-5xx answer, or null.
     */
    BoshTestClient.Answer post(User u, String body) {
        long deadline = System.nanoTime() + RETRY_WINDOW.toNanos();
        while (running) {
            attempts.increment();
            long start = System.nanoTime();
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(u.url()))
                        .timeout(Duration.ofSeconds(WAIT + 20)).header("Content-Type", "text/xml; charset=utf-8")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
                longestRequestMillis.accumulate(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
                count(Integer.toString(r.statusCode()));
                if (r.statusCode() < 500) {
                    return new BoshTestClient.Answer(r.statusCode(), r.body(), r.headers());
                }
                resends.increment();
                pause(deadline, 250);
            } catch (HttpTimeoutException e) {
                count("timeout");
                failures.add(u.name + ": request not answered within " + (WAIT + 20) + " s (a hang)");
                resends.increment();
            } catch (IOException e) {
                count("connection_error");
                resends.increment();
                u.ecm++;
                pause(deadline, 100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            }
            if (System.nanoTime() > deadline) {
                failures.add(u.name + ": gave up after " + RETRY_WINDOW.toSeconds() + " s of re-sending");
                return null;
            }
        }
        return null;
    }

    private static void pause(long deadline, long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Handles one answer; returns false when the session ended. */
    private boolean take(User u, BoshTestClient.Answer a, boolean record) {
        if (a == null) {
            return false;
        }
        if (a.status() != 200) {
            failures.add(u.name + ": HTTP " + a.status() + " " + a.body());
            u.terminated("HTTP " + a.status());
            return false;
        }
        try {
            Element body = BoshTestClient.parse(a.body());
            if ("terminate".equals(body.getAttribute("type"))) {
                u.terminated(a.body());
                return false;
            }
            if (record) {
                for (Node n = body.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (n instanceof Element e && e.getLocalName().equals("message")) {
                        Node text = e.getElementsByTagNameNS("jabber:client", "body").item(0);
                        if (text != null) {
                            received.computeIfAbsent(text.getTextContent(), k -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                }
            }
            return true;
        } catch (Exception e) {
            failures.add(u.name + ": unparsable answer " + a.body());
            return false;
        }
    }

    private void receiverLoop(User u) {
        while (running && !u.terminated) {
            long rid = u.client.nextRid();
            if (!take(u, post(u, u.client.wrap(rid, "")), true)) {
                return;
            }
        }
    }

    /** A sender keeps one request outstanding when idle and two (the new one releases the older) when sending. */
    private void senderLoop(Pair p) {
        User u = p.sender;
        String to = p.receiver.name + "@" + PrivateEjabberd.DOMAIN;
        CompletableFuture<BoshTestClient.Answer> previous = null;
        try {
            while (running && !u.terminated) {
                if (sending) {
                    String id = phase + "." + p.index + "." + p.seq.incrementAndGet();
                    long rid = u.client.nextRid();
                    String body = u.client.wrap(rid, BoshTestClient.chat(to, id));
                    sent.add(id);
                    CompletableFuture<BoshTestClient.Answer> next = CompletableFuture.supplyAsync(() -> post(u, body), pool);
                    if (previous != null && !take(u, previous.get(WAIT + 120, TimeUnit.SECONDS), false)) {
                        return;
                    }
                    previous = next;
                    Thread.sleep(messageIntervalMillis);
                } else {
                    if (previous == null) {
                        long rid = u.client.nextRid();
                        String body = u.client.wrap(rid, "");
                        previous = CompletableFuture.supplyAsync(() -> post(u, body), pool);
                    }
                    try {
                        BoshTestClient.Answer a = previous.get(200, TimeUnit.MILLISECONDS);
                        previous = null;
                        if (!take(u, a, false)) {
                            return;
                        }
                    } catch (java.util.concurrent.TimeoutException stillHeld) {
                        // keep waiting, but look at `sending` again
                    }
                }
            }
        } catch (Exception e) {
            if (running) {
                failures.add(u.name + ": sender stopped: " + e);
            }
        }
    }

    /** Figures of one phase: messages of the phase sent, received, lost and duplicated. */
    record PhaseResult(String phase, int sent, int received, int lost, int duplicates, int lostWithSession,
                       List<String> lostIds) {
        Map<String, Object> figures() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("messages_sent", sent);
            m.put("messages_received", received);
            m.put("lost", lost);
            m.put("duplicates", duplicates);
            m.put("lost_with_ended_session", lostWithSession);
            return m;
        }
    }

    /**
     * Stops sending and waits (at most {@code maxSeconds}) until every message of phase {@code name} sent to a
     * receiver whose session lives has arrived; then waits one more second for late duplicates.
     */
    PhaseResult quiesce(String name, int maxSeconds) throws InterruptedException {
        stopSending();
        Thread.sleep(messageIntervalMillis + 200);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(maxSeconds);
        while (System.nanoTime() < deadline && !missing(name).isEmpty()) {
            Thread.sleep(200);
        }
        Thread.sleep(1000);
        List<String> missing = missing(name);
        int sentCount = 0;
        int receivedCount = 0;
        int duplicates = 0;
        int lostWithSession = 0;
        for (String id : sent) {
            if (id.startsWith(name + ".")) {
                sentCount++;
                AtomicInteger n = received.get(id);
                if (n != null) {
                    receivedCount++;
                    duplicates += n.get() - 1;
                }
            }
        }
        List<String> lost = new ArrayList<>();
        for (String id : missing) {
            Pair p = pairs.get(Integer.parseInt(id.split("\\.")[1]));
            if (p.receiver.terminated || p.sender.terminated) {
                lostWithSession++;
            } else {
                lost.add(id);
            }
        }
        for (String id : received.keySet()) {
            if (id.startsWith(name + ".") && !sent.contains(id)) {
                failures.add("received a message never sent: " + id);
            }
        }
        return new PhaseResult(name, sentCount, receivedCount, lost.size(), duplicates, lostWithSession,
                lost.subList(0, Math.min(10, lost.size())));
    }

    private List<String> missing(String name) {
        List<String> missing = new ArrayList<>();
        for (String id : sent) {
            if (id.startsWith(name + ".") && !received.containsKey(id)) {
                Pair p = pairs.get(Integer.parseInt(id.split("\\.")[1]));
                if (!p.receiver.terminated && !p.sender.terminated) {
                    missing.add(id);
                }
            }
        }
        return missing;
    }

    int terminatedUsers() {
        int n = 0;
        for (Pair p : pairs) {
            n += (p.sender.terminated ? 1 : 0) + (p.receiver.terminated ? 1 : 0);
        }
        return n;
    }

    Map<String, Long> outcomeCounts() {
        Map<String, Long> m = new TreeMap<>();
        outcomes.forEach((k, v) -> m.put(k, v.sum()));
        return m;
    }

    /** Ends every session (terminate) and stops the loops. */
    @Override
    public void close() {
        running = false;
        sending = false;
        pool.shutdownNow();
    }

    /** Sends a terminate for every user whose session lives (best effort, bounded). */
    void logout() {
        List<CompletableFuture<?>> done = new ArrayList<>();
        for (Pair p : pairs) {
            for (User u : List.of(p.sender, p.receiver)) {
                if (!u.terminated && u.client != null) {
                    done.add(CompletableFuture.runAsync(() -> {
                        try {
                            u.client.terminate();
                        } catch (Exception ignored) {
                            // best effort
                        }
                    }, pool));
                }
            }
        }
        try {
            CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // best effort
        }
    }

    /** A fresh load for the same users (after their sessions ended), with the same ECM list. */
    ChatLoad again(long interval) {
        return new ChatLoad(urls, prefix, password, pairs.size(), interval);
    }

    static AtomicLong nanos() {
        return new AtomicLong(System.nanoTime());
    }
}
