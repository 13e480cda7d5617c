// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Two users who chat through one ECM while a test attacks it: a WebSocket user (java.net.http's client) and a BOSH
 * user. {@link #chatDuring} sends a message each way every 200 ms while an attack runs, then checks that every message
 * arrived exactly once, and returns the slowest delivery.
 */
final class Bystanders implements AutoCloseable {

    static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
    private static final Pattern BODY = Pattern.compile("<body>([^<]*)</body>");

    /** What the WebSocket user heard: each chat body, with when it arrived. */
    static final class Heard implements WebSocket.Listener {
        final List<String> messages = new java.util.concurrent.CopyOnWriteArrayList<>();
        final Map<String, List<Long>> bodies = new ConcurrentHashMap<>();
        volatile int closeCode = -1;
        private final StringBuilder partial = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                String message = partial.toString();
                partial.setLength(0);
                messages.add(message);
                Matcher body = BODY.matcher(message);
                if (message.startsWith("<message") && body.find()) {
                    bodies.computeIfAbsent(body.group(1), k -> new java.util.concurrent.CopyOnWriteArrayList<>())
                            .add(System.nanoTime());
                }
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
            closeCode = statusCode;
            return null;
        }

        String awaitContaining(String text) {
            await().atMost(Duration.ofSeconds(15)).until(() -> messages.stream().anyMatch(m -> m.contains(text)));
            return messages.stream().filter(m -> m.contains(text)).findFirst().orElseThrow();
        }
    }

    final String wsJid;
    final String boshJid;
    final WebSocket ws;
    final Heard heard;
    final BoshTestClient bosh;
    final BoshPoller poller;
    private final AtomicInteger rounds = new AtomicInteger();

    private Bystanders(String wsJid, WebSocket ws, Heard heard, BoshTestClient bosh) {
        this.wsJid = wsJid;
        this.ws = ws;
        this.heard = heard;
        this.bosh = bosh;
        this.boshJid = bosh.jid();
        this.poller = new BoshPoller(bosh);
    }

    static String open(String domain) {
        return "<open xmlns='" + FRAMING + "' to='" + domain + "' version='1.0'/>";
    }

    /** Logs a WebSocket user in on {@code wsUrl} (open, SASL PLAIN, restart, bind); returns its full JID. */
    static String login(WebSocket ws, Heard heard, String user, String domain, String resource) throws Exception {
        ws.sendText(open(domain), true).get(5, TimeUnit.SECONDS);
        heard.awaitContaining("PLAIN");
        String credentials = Base64.getEncoder().encodeToString(
                ("\0" + user + "\0" + SharedEjabberd.PASSWORD).getBytes(StandardCharsets.UTF_8));
        ws.sendText("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + credentials + "</auth>",
                true).get(5, TimeUnit.SECONDS);
        heard.awaitContaining("<success");
        ws.sendText(open(domain), true).get(5, TimeUnit.SECONDS);
        heard.awaitContaining("urn:ietf:params:xml:ns:xmpp-bind");
        ws.sendText("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>" + resource + "</resource></bind></iq>", true).get(5, TimeUnit.SECONDS);
        heard.awaitContaining("bind1");
        return user + "@" + domain + "/" + resource;
    }

    /** Registers two users on {@code ejabberd} and logs them in through the ECM on {@code port}. */
    static Bystanders login(PrivateEjabberd ejabberd, int port) throws Exception {
        String wsUser = "bystws" + System.nanoTime() % 100000;
        String boshUser = "bystbosh" + System.nanoTime() % 100000;
        ejabberd.register(wsUser, SharedEjabberd.PASSWORD);
        ejabberd.register(boshUser, SharedEjabberd.PASSWORD);
        BoshTestClient bosh = new BoshTestClient("http://127.0.0.1:" + port + "/http-bind", PrivateEjabberd.DOMAIN)
                .login(boshUser, SharedEjabberd.PASSWORD, 20);
        bosh.clear();
        Heard heard = new Heard();
        WebSocket ws = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(URI.create("ws://127.0.0.1:" + port + "/xmpp-websocket"), heard)
                .get(10, TimeUnit.SECONDS);
        String jid = login(ws, heard, wsUser, PrivateEjabberd.DOMAIN, "bystander");
        return new Bystanders(jid, ws, heard, bosh);
    }

    /**
     * Chats both ways (one message each way every 200 ms, at least 5 each) while {@code attack} runs; then every
     * message must arrive exactly once (within 15 s). Returns the slowest delivery, in milliseconds.
     */
    long chatDuring(ThrowingRunnable attack) throws Exception {
        String round = "r" + rounds.incrementAndGet() + "-";
        AtomicBoolean attacking = new AtomicBoolean(true);
        Map<String, Long> sentAt = new ConcurrentHashMap<>();
        List<String> toWs = new ArrayList<>();
        List<String> toBosh = new ArrayList<>();
        List<Throwable> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
        Map<String, Long> boshSeenAt = new ConcurrentHashMap<>();
        Thread chatter = new Thread(() -> {
            try {
                for (int i = 0; attacking.get() || i < 5; i++) {
                    String w = round + "w2b-" + i;
                    String b = round + "b2w-" + i;
                    toBosh.add(w);
                    toWs.add(b);
                    sentAt.put(w, System.nanoTime());
                    sentAt.put(b, System.nanoTime());
                    ws.sendText(BoshTestClient.chat(boshJid, w), true).get(5, TimeUnit.SECONDS);
                    // the answer to a request that carries a message may bring messages too, like a poll's
                    bosh.sendChat(wsJid, b).thenAccept(answer -> {
                        Matcher body = BODY.matcher(answer.body());
                        while (body.find()) {
                            poller.chatBodies.add(body.group(1));
                        }
                    });
                    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(200);
                    while (System.nanoTime() < until) {
                        poller.chatBodies.forEach(body -> boshSeenAt.putIfAbsent(body, System.nanoTime()));
                        Thread.sleep(10);
                    }
                }
            } catch (Throwable e) {
                failures.add(e);
            }
        }, "bystanders-" + round);
        chatter.start();
        try {
            attack.run();
        } finally {
            attacking.set(false);
            chatter.join(30_000);
        }
        assertThat(failures).as("the bystanders' chat failed").isEmpty();
        assertThat(poller.failures).as("the BOSH bystander's polls").isEmpty();
        try {
            await().atMost(Duration.ofSeconds(15)).pollInterval(Duration.ofMillis(10)).until(() -> {
                poller.chatBodies.forEach(body -> boshSeenAt.putIfAbsent(body, System.nanoTime()));
                return toBosh.stream().allMatch(boshSeenAt::containsKey)
                        && toWs.stream().allMatch(heard.bodies::containsKey);
            });
        } catch (org.awaitility.core.ConditionTimeoutException e) {
            throw new AssertionError("bystanders' messages missing after 15 s: to BOSH "
                    + toBosh.stream().filter(w -> !boshSeenAt.containsKey(w)).toList() + ", to WebSocket "
                    + toWs.stream().filter(b -> !heard.bodies.containsKey(b)).toList() + "; BOSH poll failures "
                    + poller.failures + "; BOSH bodies " + poller.chatBodies, e);
        }
        Thread.sleep(300); // late duplicates
        for (String w : toBosh) {
            assertThat(poller.chatBodies.stream().filter(w::equals).count()).as("BOSH user got %s", w).isEqualTo(1);
        }
        long slowest = 0;
        for (String b : toWs) {
            assertThat(heard.bodies.get(b)).as("WebSocket user got %s", b).hasSize(1);
            slowest = Math.max(slowest, heard.bodies.get(b).get(0) - sentAt.get(b));
        }
        for (String w : toBosh) {
            slowest = Math.max(slowest, boshSeenAt.get(w) - sentAt.get(w));
        }
        assertThat(heard.closeCode).as("the WebSocket bystander's connection").isEqualTo(-1);
        return TimeUnit.NANOSECONDS.toMillis(slowest);
    }

    @FunctionalInterface
    interface ThrowingRunnable {
        void run() throws Exception;
    }

    @Override
    public void close() throws Exception {
        poller.close();
        ws.abort();
    }
}
