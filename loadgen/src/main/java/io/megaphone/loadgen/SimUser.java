// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

/**
 * What the phases of {@link LoadGenerator} drive, whatever the transport: a BOSH {@link User} or a
 * {@link WsUser}. Event loop thread only.
 */
abstract class SimUser {

    final int index;
    final String name;
    int onlineSlot = -1;
    int senderSlot = -1;

    SimUser(int index, String name) {
        this.index = index;
        this.name = name;
    }

    /** Starts the login. */
    abstract void start();

    /** Whether this user sends chat messages (the others only receive). */
    abstract boolean sender();

    /** Sends {@code to} one chat message {@code m <index> <seq> <nanoTime>} (queued until it can go). */
    abstract void chat(SimUser to);

    /** The per-second check: timeouts. */
    abstract void sweep(long now);

    /** Ends the session (a goodbye when {@code terminate}, else just closes). */
    abstract void end(boolean terminate);

    /** Drops the connections at once. */
    abstract void closeConnections();

    /** Online, failed, done or ending: no longer in the ramp's way. */
    abstract boolean settled();

    /** Done or failed. */
    abstract boolean finished();

    /** Ended, and the end not yet acknowledged by the server. */
    abstract boolean ending();
}
