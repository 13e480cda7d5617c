// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.test.context.DynamicPropertyRegistry;

/**
 * A TCP proxy on a free local port in front of {@code upstream}, whose connections a test can cut: both sockets
 * closed with a reset (SO_LINGER 0), so both ends see the connection die as on a network failure, and the ECM's
 * own code finds out (no hook into it). Or stall: the proxy keeps both sockets open and reading, but drops what it
 * reads in one or both directions instead of forwarding it, as a peer that no longer reads (or a black-holed path)
 * looks to the other end.
 */
final class CuttableProxy implements AutoCloseable {

    private final ServerSocket server;
    private final InetSocketAddress upstream;
    /** Live connections, oldest first. */
    private final List<Connection> connections = new CopyOnWriteArrayList<>();
    final AtomicInteger accepted = new AtomicInteger();

    /** One proxied connection: the client's (the ECM's) socket and the upstream one, and what its stall saw. */
    /**
     * A proxy in front of the shared private ejabberd's link port, registered as the ECM's only node (with the shared
     * secret): the ECM's links then go through it, to be cut or stalled.
     */
    static CuttableProxy forSharedEjabberdLinks(DynamicPropertyRegistry registry) {
        CuttableProxy proxy;
        try {
            proxy = new CuttableProxy(new InetSocketAddress("127.0.0.1", SharedEjabberd.get().linkPort()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + proxy.port());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
        return proxy;
    }

    static final class Connection {
        final Socket client;
        final Socket upstream;
        /** Bytes from the client (requests) are dropped from now on. */
        volatile boolean dropRequests;
        /** Bytes from upstream (answers) are dropped from now on. */
        volatile boolean dropAnswers;
        /** System.nanoTime() of the stall, of the first bytes dropped each way, and of the client's close; 0: not yet. */
        volatile long stalledAt;
        volatile long firstRequestBytesDroppedAt;
        volatile long firstAnswerBytesDroppedAt;
        volatile long clientClosedAt;

        Connection(Socket client, Socket upstream) {
            this.client = client;
            this.upstream = upstream;
        }

        /** Milliseconds from the stall to the client closing the connection, or -1 while it is open. */
        double stallToCloseMillis() {
            return clientClosedAt == 0 ? -1 : (clientClosedAt - stalledAt) / 1e6;
        }
    }

    CuttableProxy(InetSocketAddress upstream) throws IOException {
        this.upstream = upstream;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        daemon("proxy-accept", this::accept);
    }

    int port() {
        return server.getLocalPort();
    }

    int live() {
        return connections.size();
    }

    /** Resets the oldest live connection; false when there is none. */
    boolean cutOldest() {
        if (connections.isEmpty()) {
            return false;
        }
        Connection connection = connections.remove(0);
        for (Socket socket : new Socket[] {connection.client, connection.upstream}) {
            try {
                socket.setSoLinger(true, 0);
            } catch (IOException ignored) {
                // closed already
            }
            closeQuietly(socket);
        }
        return true;
    }

    /**
     * Stops forwarding on the oldest live connection that is not stalled already: its answers, and its requests
     * too when {@code requestsToo}. Both sockets stay open; the connection ends when either end closes it.
     */
    Connection stallOldest(boolean requestsToo) {
        for (Connection connection : connections) {
            if (connection.stalledAt == 0) {
                connection.stalledAt = System.nanoTime();
                connection.dropRequests = requestsToo;
                connection.dropAnswers = true;
                return connection;
            }
        }
        throw new IllegalStateException("no live connection to stall");
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket client = server.accept();
                Socket server = new Socket(upstream.getAddress(), upstream.getPort());
                client.setTcpNoDelay(true);
                server.setTcpNoDelay(true);
                Connection connection = new Connection(client, server);
                connections.add(connection);
                accepted.incrementAndGet();
                daemon("proxy-up", () -> pump(connection, true));
                daemon("proxy-down", () -> pump(connection, false));
            } catch (IOException e) {
                // the proxy is closing, or upstream refused: the ECM sees a closed connection and retries
            }
        }
    }

    private void pump(Connection connection, boolean requests) {
        Socket from = requests ? connection.client : connection.upstream;
        Socket to = requests ? connection.upstream : connection.client;
        byte[] buffer = new byte[16384];
        try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
            int n;
            while ((n = in.read(buffer)) >= 0) {
                if (requests ? !connection.dropRequests : !connection.dropAnswers) {
                    out.write(buffer, 0, n);
                } else if (requests && connection.firstRequestBytesDroppedAt == 0) {
                    connection.firstRequestBytesDroppedAt = System.nanoTime();
                } else if (!requests && connection.firstAnswerBytesDroppedAt == 0) {
                    connection.firstAnswerBytesDroppedAt = System.nanoTime();
                }
            }
            if (requests) {
                connection.clientClosedAt = System.nanoTime();
            }
        } catch (IOException e) {
            // cut, or the other side closed
            if (requests && connection.clientClosedAt == 0) {
                connection.clientClosedAt = System.nanoTime();
            }
        } finally {
            connections.remove(connection);
            closeQuietly(from);
            closeQuietly(to);
        }
    }

    private static void daemon(String name, Runnable task) {
        Thread thread = new Thread(task, name);
        thread.setDaemon(true);
        thread.start();
    }

    private static void closeQuietly(Socket socket) {
        try {
            socket.close();
        } catch (IOException ignored) {
            // nothing to do
        }
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException ignored) {
            // nothing to do
        }
        while (cutOldest()) {
            // cut every connection left
        }
    }
}
