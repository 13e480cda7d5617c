// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Opens N XMPP-over-WebSocket connections (RFC 7395: subprotocol {@code xmpp}) and leaves them idle, for the
 * idle-WebSocket memory benchmark (bench/websocket-heap.sh). On each: the upgrade request, the 101, one
 * {@code <open/>} text message, the server's two answers ({@link XmppStreamAnswers}); then nothing more, either way.
 * Plain java.nio, one thread, no WebSocket library, so the client costs little and the server's side is what is
 * measured.
 *
 * <p>Usage: {@code IdleWebSocketClient host port path count ratePerSecond holdSeconds [sourcePrefix] [headers]}:
 * the client binds its sockets to {@code sourcePrefix + 1}, {@code + 2}, ... with at most 10,000 connections per
 * source address; {@code headers} is {@code browser} (default: the upgrade request headers Chromium sends, no
 * cookie) or {@code minimal} (the 6 a WebSocket handshake needs). Prints "ready N in S s" once every connection
 * has its two answers (or "NOT READY" and how many are, after 120 s), then every 5 s how many are open, ready and
 * closed by the server. Exits after
 * {@code holdSeconds}, or on SIGTERM, closing every connection.
 */
public final class IdleWebSocketClient {

    private static final int PER_SOURCE = 10_000;

    private int ready;
    private int closedByServer;
    private int refused;

    private final boolean browser;

    private IdleWebSocketClient(boolean browser) {
        this.browser = browser;
    }

    /** One connection's handshake: bytes read so far (until it is ready), the text messages received. */
    private static final class Conn {
        ByteBuffer in = ByteBuffer.allocate(2048);
        boolean upgraded;
        int messages;
        boolean done;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 6) {
            System.err.println("usage: IdleWebSocketClient host port path count ratePerSecond holdSeconds"
                    + " [sourcePrefix] [browser|minimal]");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String path = args[2];
        int count = Integer.parseInt(args[3]);
        int rate = Integer.parseInt(args[4]);
        long holdSeconds = Long.parseLong(args[5]);
        String sourcePrefix = args.length > 6 && !args[6].isEmpty() && !args[6].equals("-") ? args[6] : null;
        boolean browser = args.length <= 7 || !args[7].equals("minimal");
        new IdleWebSocketClient(browser).run(new InetSocketAddress(host, port), host + ":" + port, path, count, rate,
                holdSeconds, sourcePrefix);
    }

    private void run(InetSocketAddress target, String hostHeader, String path, int count, int rate, long holdSeconds,
                     String sourcePrefix) throws Exception {
        Selector selector = Selector.open();
        List<SocketChannel> open = new ArrayList<>(count);
        long started = System.nanoTime();
        long intervalNanos = 1_000_000_000L / Math.max(1, rate);
        for (int i = 0; i < count; i++) {
            long wait = started + i * intervalNanos - System.nanoTime();
            if (wait > 0) {
                selector.select(Math.max(1, wait / 1_000_000));
                handle(selector);
            }
            SocketChannel ch = SocketChannel.open();
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            if (sourcePrefix != null) {
                ch.bind(new InetSocketAddress(sourcePrefix + (1 + i / PER_SOURCE), 0));
            }
            ch.connect(target);
            ch.write(ByteBuffer.wrap(upgrade(hostHeader, path, browser)));
            ch.configureBlocking(false);
            ch.register(selector, SelectionKey.OP_READ, new Conn());
            open.add(ch);
            selector.selectNow();
            handle(selector);
        }
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (ready + closedByServer + refused < count && System.nanoTime() < deadline) {
            selector.select(200);
            handle(selector);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        if (ready == count) {
            System.out.printf("ready %d in %.1f s%n", count, seconds);
        } else {
            System.out.printf("NOT READY: %d of %d ready, %d refused, %d closed by the server, after %.1f s%n", ready,
                    count, refused, closedByServer, seconds);
        }
        System.out.flush();

        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(main::interrupt));
        long end = System.nanoTime() + holdSeconds * 1_000_000_000L;
        long nextReport = System.nanoTime() + 5_000_000_000L;
        String last = "";
        while (System.nanoTime() < end && !Thread.currentThread().isInterrupted()) {
            selector.select(1000);
            handle(selector);
            if (System.nanoTime() > nextReport) {
                nextReport += 5_000_000_000L;
                long stillOpen = open.stream().filter(SocketChannel::isOpen).count();
                String now = String.format("client: %d open, %d ready, %d closed by the server%s", stillOpen, ready,
                        closedByServer, closedByServer > 0 ? " (NOT IDLE)" : "");
                if (!now.equals(last)) {
                    System.out.println(now);
                    last = now;
                }
            }
        }
        for (SocketChannel ch : open) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        System.out.println("client: closed " + open.size() + " connections");
    }

    private void handle(Selector selector) throws IOException {
        Iterator<SelectionKey> keys = selector.selectedKeys().iterator();
        while (keys.hasNext()) {
            SelectionKey key = keys.next();
            keys.remove();
            SocketChannel ch = (SocketChannel) key.channel();
            Conn conn = (Conn) key.attachment();
            ByteBuffer in = conn.done ? ByteBuffer.allocate(256) : conn.in;
            int read;
            try {
                read = ch.read(in);
            } catch (IOException e) {
                read = -1;
            }
            if (read < 0 || conn.done && read > 0) { // an idle stream gets nothing more: a close, or an error
                if (conn.done) {
                    ready--;
                }
                if (conn.upgraded) {
                    closedByServer++;
                } else {
                    refused++;
                    if (refused <= 3) {
                        System.out.println("client: refused: " + new String(in.array(), 0, Math.min(in.position(), 200),
                                StandardCharsets.ISO_8859_1).replace("\r\n", " | "));
                    }
                }
                conn.done = false;
                conn.in = null;
                key.cancel();
                ch.close();
                continue;
            }
            if (!conn.done) {
                progress(ch, conn);
            }
        }
    }

    /** Reads the 101, then sends {@code <open/>}, then counts the server's text messages until there are two. */
    private void progress(SocketChannel ch, Conn conn) throws IOException {
        ByteBuffer in = conn.in;
        in.flip();
        if (!conn.upgraded) {
            int end = headEnd(in);
            if (end < 0) {
                in.compact();
                return;
            }
            String head = new String(in.array(), 0, end, StandardCharsets.ISO_8859_1);
            if (!head.startsWith("HTTP/1.1 101")) {
                in.position(in.limit()).limit(in.capacity()); // kept for the "refused" line
                return; // the server closes a refused handshake: counted as refused then
            }
            conn.upgraded = true;
            in.position(end);
            ch.write(ByteBuffer.wrap(maskedText(XmppStreamAnswers.CLIENT_OPEN)));
        }
        while (in.remaining() >= 2) {
            int start = in.position();
            int opcode = in.get(start) & 0x0F;
            int len = in.get(start + 1) & 0x7F;
            int header = 2;
            if (len == 126) {
                if (in.remaining() < 4) {
                    break;
                }
                len = ((in.get(start + 2) & 0xFF) << 8) | (in.get(start + 3) & 0xFF);
                header = 4;
            }
            if (in.remaining() < header + len) {
                break;
            }
            in.position(start + header + len);
            if (opcode == 1) {
                conn.messages++;
            }
        }
        in.compact();
        if (conn.messages >= 2) {
            conn.done = true;
            conn.in = null;
            ready++;
        }
    }

    private static int headEnd(ByteBuffer in) {
        for (int i = in.position(); i + 3 < in.limit(); i++) {
            if (in.get(i) == '\r' && in.get(i + 1) == '\n' && in.get(i + 2) == '\r' && in.get(i + 3) == '\n') {
                return i + 4;
            }
        }
        return -1;
    }

    static byte[] upgrade(String host, String path, boolean browser) {
        byte[] key = new byte[16];
        ThreadLocalRandom.current().nextBytes(key);
        String keyHeader = "Sec-WebSocket-Key: " + Base64.getEncoder().encodeToString(key) + "\r\n";
        if (!browser) {
            return ("GET " + path + " HTTP/1.1\r\n"
                    + "Host: " + host + "\r\n"
                    + "Upgrade: websocket\r\n"
                    + "Connection: Upgrade\r\n"
                    + keyHeader
                    + "Sec-WebSocket-Version: 13\r\n"
                    + "Sec-WebSocket-Protocol: xmpp\r\n"
                    + "\r\n").getBytes(StandardCharsets.US_ASCII);
        }
        return ("GET " + path + " HTTP/1.1\r\n" // Chromium's, in its order
                + "Host: " + host + "\r\n"
                + "Connection: Upgrade\r\n"
                + "Pragma: no-cache\r\n"
                + "Cache-Control: no-cache\r\n"
                + "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
                + " Chrome/131.0.0.0 Safari/537.36\r\n"
                + "Upgrade: websocket\r\n"
                + "Origin: http://" + host + "\r\n"
                + "Sec-WebSocket-Version: 13\r\n"
                + "Accept-Encoding: gzip, deflate, br, zstd\r\n"
                + "Accept-Language: en-US,en;q=0.9\r\n"
                + keyHeader
                + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                + "Sec-WebSocket-Protocol: xmpp\r\n"
                + "\r\n").getBytes(StandardCharsets.US_ASCII);
    }

    /** A client's text frame (masked, as RFC 6455 requires), payload under 126 bytes. */
    static byte[] maskedText(byte[] payload) {
        if (payload.length >= 126) {
            throw new IllegalArgumentException("payload: " + payload.length + " bytes (expected: < 126)");
        }
        byte[] mask = new byte[4];
        ThreadLocalRandom.current().nextBytes(mask);
        byte[] frame = new byte[6 + payload.length];
        frame[0] = (byte) 0x81;
        frame[1] = (byte) (0x80 | payload.length);
        System.arraycopy(mask, 0, frame, 2, 4);
        for (int i = 0; i < payload.length; i++) {
            frame[6 + i] = (byte) (payload[i] ^ mask[i & 3]);
        }
        return frame;
    }
}
