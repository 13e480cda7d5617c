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
import java.util.Iterator;
import java.util.List;

/**
 * Opens N HTTP/1.1 connections to the ECM, POSTs one valid BOSH body on each and keeps them all open, for the
 * held-request memory benchmark (bench/held-requests.sh). Plain java.nio: one thread, no HTTP library, so the
 * client costs little and the ECM's side is what is measured.
 *
 * <p>Usage: {@code HeldRequestClient host port count ratePerSecond holdSeconds [sourcePrefix] [firstRid] [path]}
 * <ul>
 *   <li>{@code sourcePrefix}: e.g. {@code 127.0.1.} — the client binds its sockets to {@code sourcePrefix + 1},
 *       {@code + 2}, ... with at most 10,000 connections per source address (the loopback ephemeral port range is
 *       about 28,000 per source/destination pair). Default: no bind (kernel's choice).</li>
 *   <li>{@code firstRid}: rid of the first request (each connection gets the next one). Default 1.</li>
 * </ul>
 * Prints "sent N" once all N requests are written, then every 5 s how many connections are open and how many got
 * any answer (an answer means the request was not held: the benchmark is then wrong, and says so). Exits after
 * {@code holdSeconds}, or on SIGTERM, closing every connection.
 */
public final class HeldRequestClient {

    private static final int PER_SOURCE = 10_000;

    private HeldRequestClient() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: HeldRequestClient host port count ratePerSecond holdSeconds"
                    + " [sourcePrefix] [firstRid] [path]");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        int count = Integer.parseInt(args[2]);
        int rate = Integer.parseInt(args[3]);
        long holdSeconds = Long.parseLong(args[4]);
        String sourcePrefix = args.length > 5 && !args[5].isEmpty() && !args[5].equals("-") ? args[5] : null;
        long firstRid = args.length > 6 ? Long.parseLong(args[6]) : 1;
        String path = args.length > 7 ? args[7] : "/http-bind";
        InetSocketAddress target = new InetSocketAddress(host, port);

        Selector selector = Selector.open();
        List<SocketChannel> open = new ArrayList<>(count);
        int answered = 0;
        long started = System.nanoTime();
        long intervalNanos = 1_000_000_000L / Math.max(1, rate);
        ByteBuffer sink = ByteBuffer.allocate(4096);
        for (int i = 0; i < count; i++) {
            // bounded ramp: request i is not sent before started + i / rate
            long due = started + i * intervalNanos;
            long wait = due - System.nanoTime();
            if (wait > 0) {
                Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
            }
            SocketChannel ch = SocketChannel.open();
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            if (sourcePrefix != null) {
                ch.bind(new InetSocketAddress(sourcePrefix + (1 + i / PER_SOURCE), 0));
            }
            ch.connect(target);
            ch.write(ByteBuffer.wrap(request(host, port, path, firstRid + i)));
            ch.configureBlocking(false);
            ch.register(selector, SelectionKey.OP_READ);
            open.add(ch);
            if ((i + 1) % 1000 == 0) {
                answered += drain(selector, sink);
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        System.out.printf("sent %d in %.1f s (%d answered so far)%n", count, seconds, answered);
        System.out.flush();

        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            main.interrupt();
        }));
        long end = System.nanoTime() + holdSeconds * 1_000_000_000L;
        long nextReport = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < end && !Thread.currentThread().isInterrupted()) {
            selector.select(1000);
            answered += handle(selector, sink);
            if (System.nanoTime() > nextReport) {
                nextReport += 5_000_000_000L;
                long stillOpen = open.stream().filter(SocketChannel::isOpen).count();
                System.out.printf("client: %d open, %d answered%s%n", stillOpen, answered,
                        answered > 0 ? " (NOT HELD: the ECM answered)" : "");
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

    private static int drain(Selector selector, ByteBuffer sink) throws IOException {
        selector.selectNow();
        return handle(selector, sink);
    }

    /** Counts connections that got bytes or were closed by the ECM; a held request gets neither. */
    private static int handle(Selector selector, ByteBuffer sink) throws IOException {
        int answered = 0;
        Iterator<SelectionKey> keys = selector.selectedKeys().iterator();
        while (keys.hasNext()) {
            SelectionKey key = keys.next();
            keys.remove();
            SocketChannel ch = (SocketChannel) key.channel();
            sink.clear();
            int read;
            try {
                read = ch.read(sink);
            } catch (IOException e) {
                read = -1;
            }
            if (read != 0) {
                if (key.attachment() == null) {
                    key.attach(Boolean.TRUE);
                    answered++;
                    if (answered <= 3 && read > 0) {
                        System.out.println("client: answer: " + new String(sink.array(), 0, Math.min(read, 200),
                                StandardCharsets.ISO_8859_1).replace("\r\n", " | "));
                    }
                }
                if (read < 0) {
                    key.cancel();
                    ch.close();
                }
            }
        }
        return answered;
    }

    static byte[] request(String host, int port, String path, long rid) {
        byte[] body = ("<body rid='" + rid + "' sid='bench' xmlns='http://jabber.org/protocol/httpbind'/>")
                .getBytes(StandardCharsets.UTF_8);
        String head = "POST " + path + " HTTP/1.1\r\n"
                + "Host: " + host + ":" + port + "\r\n"
                + "Content-Type: text/xml; charset=utf-8\r\n"
                + "Content-Length: " + body.length + "\r\n"
                + "\r\n";
        byte[] headBytes = head.getBytes(StandardCharsets.US_ASCII);
        byte[] out = new byte[headBytes.length + body.length];
        System.arraycopy(headBytes, 0, out, 0, headBytes.length);
        System.arraycopy(body, 0, out, headBytes.length, body.length);
        return out;
    }
}
