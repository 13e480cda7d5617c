// SPDX-License-Identifier: Apache-2.0
/**
 * The client-facing BOSH side: a WebFlux functional endpoint on the Reactor Netty server Spring Boot runs on
 * {@code server.port}. Start at {@link io.megaphone.edge.BoshHandler#post} (one POST becomes one Mono) and
 * {@link io.megaphone.edge.HeldRequest} (that Mono, while ejabberd holds the request); the wiring is
 * {@link io.megaphone.edge.EdgeConfiguration}. Admission control, client addresses and the answers the edge gives
 * itself have a class each; {@link io.megaphone.edge.EdgeDrain} drains the edge on SIGTERM.
 */
package io.megaphone.edge;
