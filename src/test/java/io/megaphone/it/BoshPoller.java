// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * Keeps one long poll outstanding for a logged-in client, like a web client does: a 200 answer moves on to the
 * next rid; a 5xx answer (the ECM could not reach ejabberd) re-sends the same rid after a short pause, as
 * Strophe.js does. Collects every chat body received, in order, so tests can check "exactly once".
 */
final class BoshPoller implements AutoCloseable {

    private final BoshTestClient client;
    private final Thread thread;
    private final AtomicBoolean running = new AtomicBoolean(true);
    final List<String> chatBodies = new CopyOnWriteArrayList<>();
    final AtomicInteger retries = new AtomicInteger();
    final List<String> failures = new CopyOnWriteArrayList<>();

    BoshPoller(BoshTestClient client) {
        this.client = client;
        this.thread = new Thread(this::loop, "poller-" + client.jid());
        this.thread.setDaemon(true);
        this.thread.start();
    }

    private void loop() {
        long rid = client.nextRid();
        while (running.get()) {
            try {
                BoshTestClient.Answer answer = client.post(client.wrap(rid, ""));
                if (answer.status() >= 500) {
                    retries.incrementAndGet();
                    Thread.sleep(100);
                    continue;
                }
                if (answer.status() != 200) {
                    failures.add("HTTP " + answer.status() + ": " + answer.body());
                    return;
                }
                Element body = BoshTestClient.parse(answer.body());
                if ("terminate".equals(body.getAttribute("type"))) {
                    if (running.get()) {
                        failures.add("session terminated: " + answer.body());
                    }
                    return;
                }
                for (Node n = body.getFirstChild(); n != null; n = n.getNextSibling()) {
                    if (n instanceof Element e && e.getLocalName().equals("message")) {
                        Node text = e.getElementsByTagNameNS("jabber:client", "body").item(0);
                        if (text != null) {
                            chatBodies.add(text.getTextContent());
                        }
                    }
                }
                rid = client.nextRid();
            } catch (Exception e) {
                if (running.get()) {
                    failures.add(e.toString());
                    return;
                }
            }
        }
    }

    @Override
    public void close() throws InterruptedException {
        running.set(false);
        thread.join(100);
    }
}
