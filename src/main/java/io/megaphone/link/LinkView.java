// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

/** What operators and metrics see of one configured link (a slot: it keeps its name across reconnects). */
public interface LinkView {

    /**
     * {@code host:port#index} ({@code host/ip:port#index} for a node found by DNS): stable while the link exists, a
     * metric tag with a bounded set of values.
     */
    String name();

    /** Whether the link is authenticated and takes requests. */
    boolean up();

    int inflight();

    /** Seconds, or NaN before the first heartbeat answer. */
    double rttSeconds();

    LinkStats stats();
}
