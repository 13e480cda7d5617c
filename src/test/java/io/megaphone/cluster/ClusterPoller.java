// SPDX-License-Identifier: Apache-2.0
package io.megaphone.cluster;

import io.megaphone.it.BoshTestClient;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

/**
 * Keeps one long poll outstanding for a logged-in client, like a web client: a 200 answer moves on to the next
 * rid; a network error or a 5xx re-sends the same rid ({@link Resender}), each time to the next URL of the
 * client's balancer, so consecutive requests of one session alternate between ECMs. Collects every chat body in
 * order (for "exactly once"); stops at a BOSH terminate and keeps its condition and when it came.
 */
final class ClusterPoller implements AutoCloseable {

    final BoshTestClient client;
    final Resender resender = new Resender();
    final List<String> chatBodies = new CopyOnWriteArrayList<>();
    final List<String> failures = new CopyOnWriteArrayList<>();
    volatile String terminateCondition;
    volatile long terminatedAtNanos;
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;

    ClusterPoller(BoshTestClient client) {
        this.client = client;
        this.thread = new Thread(this::loop, "cluster-poller-" + client.jid());
        this.thread.setDaemon(true);
        this.thread.start();
    }

    private void loop() {
        while (running.get()) {
            try {
                BoshTestClient.Answer answer = resender.post(client, client.wrap(client.nextRid(), ""))
                        .get(120, TimeUnit.SECONDS);
                Element body = BoshTestClient.parse(answer.body());
                if ("terminate".equals(body.getAttribute("type"))) {
                    terminateCondition = body.getAttribute("condition");
                    terminatedAtNanos = System.nanoTime();
                    return;
                }
                if (answer.status() != 200) {
                    failures.add("HTTP " + answer.status() + ": " + answer.body());
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
            } catch (Exception e) {
                if (running.get()) {
                    failures.add(e.toString());
                }
                return;
            }
        }
    }

    boolean terminated() {
        return terminateCondition != null;
    }

    boolean finished() {
        return !thread.isAlive();
    }

    @Override
    public void close() throws InterruptedException {
        running.set(false);
        thread.join(100);
    }
}
