// SPDX-License-Identifier: Apache-2.0
package io.megaphone.cluster;

import io.megaphone.it.BoshTestClient;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What Strophe.js does when a request fails: a network error (the connection refused or reset, e.g. the ECM that
 * held it was killed) or a 5xx answer makes it re-send the same body (same rid) after a short pause, to whatever
 * URL the balancer gives next. Counts every re-send and remembers why.
 */
final class Resender {

    static final int MAX_ATTEMPTS = 20;
    private static final Executor PAUSE = CompletableFuture.delayedExecutor(150, TimeUnit.MILLISECONDS);

    final AtomicInteger resends = new AtomicInteger();
    final List<String> reasons = new CopyOnWriteArrayList<>();

    /** Posts {@code body} until an answer other than 5xx comes (or {@link #MAX_ATTEMPTS} fail). */
    CompletableFuture<BoshTestClient.Answer> post(BoshTestClient client, String body) {
        return attempt(client, body, 1);
    }

    private CompletableFuture<BoshTestClient.Answer> attempt(BoshTestClient client, String body, int attempt) {
        return client.postAsync(body).handle((answer, error) -> {
            if (error == null && answer.status() < 500) {
                return CompletableFuture.completedFuture(answer);
            }
            String reason = error != null ? cause(error).toString() : "HTTP " + answer.status();
            if (attempt >= MAX_ATTEMPTS) {
                return CompletableFuture.<BoshTestClient.Answer>failedFuture(
                        new IllegalStateException("gave up after " + attempt + " attempts: " + reason));
            }
            resends.incrementAndGet();
            reasons.add(reason);
            return CompletableFuture.supplyAsync(() -> null, PAUSE)
                    .thenCompose(ignored -> attempt(client, body, attempt + 1));
        }).thenCompose(f -> f);
    }

    private static Throwable cause(Throwable error) {
        return error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
    }
}
