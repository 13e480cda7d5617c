/**
 * The client-facing BOSH side: a plain Netty HTTP/1.1 server on {@code server.port}. Start at
 * {@link io.megaphone.edge.BoshConnection} (one TCP connection: read, check, forward, answer); what connections
 * share is {@link io.megaphone.edge.BoshEdge}; admission control, CORS, client addresses and the answers the edge
 * writes itself have a class each. {@link io.megaphone.edge.EdgeDrain} drains the edge on SIGTERM.
 */
package io.megaphone.edge;
