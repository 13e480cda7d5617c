// SPDX-License-Identifier: Apache-2.0
/**
 * The megaphone link to mod_megaphone (docs/protocol.md). {@link io.megaphone.link.LinkPool} is the entry point:
 * {@code submit} sends one request and hears its answer; it keeps K links per ejabberd node
 * ({@link io.megaphone.link.LinkSlot}, reconnecting with backoff), each a Netty pipeline:
 * {@link io.megaphone.link.LinkHandshakeHandler} until WELCOME, then {@link io.megaphone.link.LinkHeartbeatHandler},
 * and {@link io.megaphone.link.LinkMultiplexer} (the requests in flight, their ids and deadlines, and on a version-2 link
 * the WebSocket {@link io.megaphone.link.LinkStream}s that {@code openStream} opens), which is what the
 * pool holds of a link. {@link io.megaphone.link.FrameCodec} is the wire format;
 * {@link io.megaphone.link.NodeDiscovery} finds nodes from a DNS name.
 */
package io.megaphone.link;
