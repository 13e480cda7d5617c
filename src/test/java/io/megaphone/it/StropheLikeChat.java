// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * Sessions in pairs chatting as Strophe.js does with {@code requests='2'} (hold=1): always one request outstanding
 * (an empty poll when there is nothing to send), queued stanzas sent at once on a second request while the first is
 * held, never two outstanding whose rids differ by 2 or more, rids in order, and a request answered 5xx or not at
 * all (connection error)
 * re-sent with the same rid and body. Each message's text is a unique id, so a test can tell lost and duplicated
 * messages apart. Each pair is one resource of user A and the same resource of user B, writing to each other's full
 * JID.
 */
final class StropheLikeChat implements AutoCloseable {

    /** The last message of each session, sent by {@link #finish}: XMPP keeps one sender's order to one receiver. */
    static final String END = "end";

    private final String url;
    private final int waitSeconds;
    private final long minGapMillis;
    private final long maxGapMillis;
    final List<Session> sessions = new ArrayList<>();
    /** Message id: times received. */
    final Map<String, AtomicInteger> received = new ConcurrentHashMap<>();
    final Set<String> sent = ConcurrentHashMap.newKeySet();
    final AtomicInteger retries = new AtomicInteger();
    private final ExecutorService threads = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "strophe-like");
        t.setDaemon(true);
        return t;
    });
    private volatile boolean sending;
    private volatile boolean running = true;

    /** Each session sends a message every {@code minGapMillis} to {@code maxGapMillis} (uniform) while sending. */
    StropheLikeChat(String url, int waitSeconds, long minGapMillis, long maxGapMillis) {
        this.url = url;
        this.waitSeconds = waitSeconds;
        this.minGapMillis = minGapMillis;
        this.maxGapMillis = maxGapMillis;
    }

    /** Logs in {@code pairs} resources of each user (8 at a time) and starts every session's loop. */
    void start(String userA, String userB, String password, int pairs) throws Exception {
        ExecutorService logins = Executors.newFixedThreadPool(8);
        try {
            List<CompletableFuture<Session>> done = new ArrayList<>();
            for (int i = 0; i < pairs; i++) {
                String resource = "r" + i;
                done.add(CompletableFuture.supplyAsync(() -> login(userA, password, resource), logins));
                done.add(CompletableFuture.supplyAsync(() -> login(userB, password, resource), logins));
            }
            for (CompletableFuture<Session> session : done) {
                sessions.add(session.get(120, TimeUnit.SECONDS));
            }
        } finally {
            logins.shutdownNow();
        }
        for (int i = 0; i < sessions.size(); i += 2) {
            sessions.get(i).peer = sessions.get(i + 1).client.jid();
            sessions.get(i + 1).peer = sessions.get(i).client.jid();
        }
        sessions.forEach(threads::execute);
    }

    private Session login(String user, String password, String resource) {
        try {
            BoshTestClient client = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login(user, password, waitSeconds,
                    resource);
            client.clear();
            return new Session(client, user + "/" + resource);
        } catch (Exception e) {
            throw new IllegalStateException("login of " + user + "/" + resource + " failed", e);
        }
    }

    void startSending() {
        sending = true;
    }

    /** Stops the periodic messages and queues each session's {@link #END} message. */
    void finish() {
        sending = false;
        for (Session session : sessions) {
            session.events.add(new Outgoing(session.name + "." + END));
        }
    }

    /** Sessions that have not received their peer's END yet. */
    List<String> withoutEnd() {
        List<String> missing = new ArrayList<>();
        for (Session session : sessions) {
            if (!received.containsKey(sessionName(session.peer) + "." + END)) {
                missing.add(session.name);
            }
        }
        return missing;
    }

    /** The sessions that ended or got an answer no client takes (4xx, a terminate), with what they got. */
    List<String> lost() {
        List<String> lost = new ArrayList<>();
        for (Session session : sessions) {
            if (session.lostBecause != null) {
                lost.add(session.name + ": " + session.lostBecause);
            }
        }
        return lost;
    }

    /** Ids sent and never received. */
    List<String> missing() {
        return sent.stream().filter(id -> !received.containsKey(id)).sorted().toList();
    }

    /** Ids received more than once, or never sent. */
    List<String> duplicatesAndStrays() {
        List<String> wrong = new ArrayList<>();
        received.forEach((id, n) -> {
            if (n.get() != 1 || !sent.contains(id)) {
                wrong.add(id + " x" + n.get());
            }
        });
        return wrong;
    }

    private String sessionName(String jid) {
        return jid.substring(0, jid.indexOf('@')) + "/" + jid.substring(jid.indexOf('/') + 1);
    }

    private record Outgoing(String id) {
    }

    private record Answered(long rid, String body, BoshTestClient.Answer answer, Throwable error) {
    }

    /** One session's loop: all its state is confined to its thread, the HTTP answers come in as events. */
    final class Session implements Runnable {
        final BoshTestClient client;
        final String name;
        volatile String peer;
        volatile String lostBecause;
        final BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        private final List<String> outbox = new ArrayList<>();
        private final java.util.TreeSet<Long> outstanding = new java.util.TreeSet<>();
        private long lastRid;
        private int seq;

        Session(BoshTestClient client, String name) {
            this.client = client;
            this.name = name;
        }

        @Override
        public void run() {
            long nextMessage = System.nanoTime();
            try {
                while (running && lostBecause == null) {
                    // Strophe.js sends a second request only when its rid is within the window ('requests', 2) of
                    // the oldest one outstanding: never rid N+2 while N waits.
                    boolean canSend = outstanding.isEmpty() || outstanding.size() == 1 && outstanding.first() == lastRid;
                    if (canSend && !outbox.isEmpty()) {
                        StringBuilder stanzas = new StringBuilder();
                        for (String id : outbox) {
                            stanzas.append(BoshTestClient.chat(peer, id));
                        }
                        outbox.clear();
                        post(client.nextRid(), stanzas.toString());
                    }
                    if (outstanding.isEmpty()) {
                        post(client.nextRid(), "");
                    }
                    long now = System.nanoTime();
                    if (sending && now - nextMessage >= 0) {
                        String id = name + "." + (++seq);
                        sent.add(id);
                        outbox.add(id);
                        nextMessage = now + TimeUnit.MILLISECONDS.toNanos(
                                ThreadLocalRandom.current().nextLong(minGapMillis, maxGapMillis + 1));
                        continue;
                    }
                    Object event = events.poll(Math.max(1, Math.min(nextMessage - now,
                            TimeUnit.MILLISECONDS.toNanos(50))), TimeUnit.NANOSECONDS);
                    if (event instanceof Outgoing outgoing) {
                        sent.add(outgoing.id());
                        outbox.add(outgoing.id());
                    } else if (event instanceof Answered answered) {
                        take(answered);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private void post(long rid, String stanzas) {
            outstanding.add(rid);
            lastRid = rid;
            String body = client.wrap(rid, stanzas);
            client.postAsync(body).whenComplete((answer, error) ->
                    events.add(new Answered(rid, stanzas, answer, error)));
        }

        private void take(Answered answered) throws InterruptedException {
            BoshTestClient.Answer answer = answered.answer();
            if (answered.error() != null || answer.status() >= 500) {
                retries.incrementAndGet(); // as Strophe.js: the same rid and body again, a moment later
                Thread.sleep(100);
                String body = client.wrap(answered.rid(), answered.body());
                client.postAsync(body).whenComplete((again, error) ->
                        events.add(new Answered(answered.rid(), answered.body(), again, error)));
                return;
            }
            outstanding.remove(answered.rid());
            if (answer.status() != 200) {
                lostBecause = "HTTP " + answer.status() + " " + answer.body();
                return;
            }
            try {
                Element body = BoshTestClient.parse(answer.body());
                if ("terminate".equals(body.getAttribute("type"))) {
                    lostBecause = answer.body();
                    return;
                }
                for (Node n = body.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (n instanceof Element e && e.getLocalName().equals("message")) {
                        Node text = e.getElementsByTagNameNS("jabber:client", "body").item(0);
                        if (text != null) {
                            received.computeIfAbsent(text.getTextContent(), k -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                }
            } catch (Exception e) {
                lostBecause = "unparsable answer " + answer.body();
            }
        }
    }

    @Override
    public void close() {
        running = false;
        sending = false;
        threads.shutdownNow();
    }
}
