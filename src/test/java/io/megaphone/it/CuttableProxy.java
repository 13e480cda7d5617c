// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP proxy on a free local port in front of {@code upstream}, whose connections a test can cut: both sockets
 * closed with a reset (SO_LINGER 0), so both ends see the connection die as on a network failure, and the ECM's
 * own code finds out (no hook into it).
 */
final class CuttableProxy implements AutoCloseable {

    private final ServerSocket server;
    private final InetSocketAddress upstream;
    /** Live connections, oldest first: {client side, upstream side}. */
    private final List<Socket[]> connections = new CopyOnWriteArrayList<>();
    final AtomicInteger accepted = new AtomicInteger();

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
        Socket[] pair = connections.remove(0);
        for (Socket socket : pair) {
            try {
                socket.setSoLinger(true, 0);
            } catch (IOException ignored) {
                // closed already
            }
            closeQuietly(socket);
        }
        return true;
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket client = server.accept();
                Socket server = new Socket(upstream.getAddress(), upstream.getPort());
                client.setTcpNoDelay(true);
                server.setTcpNoDelay(true);
                Socket[] pair = {client, server};
                connections.add(pair);
                accepted.incrementAndGet();
                daemon("proxy-up", () -> pump(client, server, pair));
                daemon("proxy-down", () -> pump(server, client, pair));
            } catch (IOException e) {
                // the proxy is closing, or upstream refused: the ECM sees a closed connection and retries
            }
        }
    }

    private void pump(Socket from, Socket to, Socket[] pair) {
        byte[] buffer = new byte[16384];
        try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
            int n;
            while ((n = in.read(buffer)) >= 0) {
                out.write(buffer, 0, n);
            }
        } catch (IOException e) {
            // cut, or the other side closed
        } finally {
            connections.remove(pair);
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
