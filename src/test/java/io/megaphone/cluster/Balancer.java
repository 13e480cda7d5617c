// SPDX-License-Identifier: Apache-2.0
package io.megaphone.cluster;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * A stand-in for a plain round-robin load balancer with no sticky sessions: every request goes to the next
 * backend. A backend taken out (as a health check would, a moment after it died) gets no more requests; requests
 * already on their way to it fail and the client re-sends them.
 */
final class Balancer implements Supplier<String> {

    private final List<String> backends = new CopyOnWriteArrayList<>();
    private final AtomicInteger next = new AtomicInteger();

    Balancer(String... urls) {
        backends.addAll(List.of(urls));
    }

    @Override
    public String get() {
        List<String> now = List.copyOf(backends);
        return now.get(Math.floorMod(next.getAndIncrement(), now.size()));
    }

    void remove(String url) {
        backends.remove(url);
    }

    void add(String url) {
        backends.add(url);
    }

    /** A URL supplier that answers {@code first} once, then follows this balancer. */
    Supplier<String> startingAt(String first) {
        AtomicInteger calls = new AtomicInteger();
        return () -> calls.getAndIncrement() == 0 ? first : get();
    }
}
