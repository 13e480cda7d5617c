// SPDX-License-Identifier: Apache-2.0
package io.megaphone.cluster;

import io.megaphone.it.BoshTestClient;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The sending side of a web client: each chat message goes in its own request without waiting for the answer
 * (ejabberd holds it until something comes or {@code wait} passes), but, as XEP-0124 requires and Strophe.js does,
 * never more than {@code requests} (hold + 1 = 2) requests are in flight: a third waits for the oldest answer. A
 * failed request is re-sent with the same rid ({@link Resender}). Without that limit a request being re-sent lets
 * later rids run ahead by more than 2, and ejabberd ends the session ("Request ID is out of range").
 */
final class ChatSender {

    private static final int REQUESTS = 2;

    final BoshTestClient client;
    final Resender resender = new Resender();
    private final Deque<CompletableFuture<BoshTestClient.Answer>> inFlight = new ArrayDeque<>();
    private final List<CompletableFuture<BoshTestClient.Answer>> all = new ArrayList<>();

    ChatSender(BoshTestClient client) {
        this.client = client;
    }

    void send(String to, String text) throws Exception {
        post(client.wrap(0, BoshTestClient.chat(to, text)), true);
    }

    /** Ends the session (type='terminate'), after the limit allows it; returns the answer. */
    BoshTestClient.Answer terminate() throws Exception {
        return post(null, false).get(30, TimeUnit.SECONDS);
    }

    private CompletableFuture<BoshTestClient.Answer> post(String template, boolean chat) throws Exception {
        inFlight.removeIf(CompletableFuture::isDone);
        while (inFlight.size() >= REQUESTS) {
            inFlight.peekFirst().get(60, TimeUnit.SECONDS);
            inFlight.removeIf(CompletableFuture::isDone);
        }
        long rid = client.nextRid();
        String body = chat ? template.replaceFirst("rid='0'", "rid='" + rid + "'")
                : "<body rid='" + rid + "' sid='" + client.sid() + "' type='terminate'"
                + " xmlns='http://jabber.org/protocol/httpbind'><presence type='unavailable' xmlns='jabber:client'/></body>";
        CompletableFuture<BoshTestClient.Answer> answer = resender.post(client, body);
        inFlight.add(answer);
        all.add(answer);
        return answer;
    }

    /** Every answer (waits up to {@code seconds} for each). */
    List<BoshTestClient.Answer> answers(long seconds) throws Exception {
        List<BoshTestClient.Answer> answers = new ArrayList<>();
        for (CompletableFuture<BoshTestClient.Answer> answer : all) {
            answers.add(answer.get(seconds, TimeUnit.SECONDS));
        }
        return answers;
    }
}
