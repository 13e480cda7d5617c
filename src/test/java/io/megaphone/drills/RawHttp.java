// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;

/**
 * HTTP/1.1 over a plain socket, one request per connection, so a drill can send what no HTTP library would:
 * broken bodies, wrong lengths, bytes one at a time, nothing at all. The outcome is the status code of the
 * answer, {@code closed} when the server closed (or reset) the connection without an answer, or {@code hang}
 * when nothing happened for {@code readTimeoutMillis}.
 */
final class RawHttp {

    enum Mode { NORMAL, SLOW_HEADERS, SLOW_BODY, SILENT, SHORT_BODY }

    record Outcome(String status, String head, String body, long millis) {
    }

    private RawHttp() {
    }

    static byte[] request(String method, String path, String contentType, byte[] body, String... extraHeaders) {
        StringBuilder head = new StringBuilder(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Connection: close\r\n");
        if (contentType != null) {
            head.append("Content-Type: ").append(contentType).append("\r\n");
        }
        for (String h : extraHeaders) {
            head.append(h).append("\r\n");
        }
        head.append("Content-Length: ").append(body.length).append("\r\n\r\n");
        byte[] h = head.toString().getBytes(StandardCharsets.ISO_8859_1);
        byte[] all = new byte[h.length + body.length];
        System.arraycopy(h, 0, all, 0, h.length);
        System.arraycopy(body, 0, all, h.length, body.length);
        return all;
    }

    /** Sends {@code bytes} to 127.0.0.1:{@code port} from {@code source} (null: any) the way {@code mode} says. */
    static Outcome exchange(InetAddress source, int port, byte[] bytes, Mode mode, int readTimeoutMillis) {
        long start = System.nanoTime();
        try (Socket socket = new Socket()) {
            if (source != null) {
                socket.bind(new InetSocketAddress(source, 0));
            }
            socket.setSoLinger(true, 0); // no TIME_WAIT pile-up on this side
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5000);
            socket.setSoTimeout(readTimeoutMillis);
            OutputStream out = socket.getOutputStream();
            try {
                switch (mode) {
                    case NORMAL -> out.write(bytes);
                    case SILENT -> { }
                    case SLOW_HEADERS -> dribble(out, bytes, 0);
                    case SLOW_BODY -> dribble(out, bytes, headerEnd(bytes));
                    case SHORT_BODY -> out.write(bytes, 0, bytes.length - Math.min(bytes.length - headerEnd(bytes), 10));
                }
                out.flush();
            } catch (IOException closedWhileWriting) {
                // the server gave up on us: read what it said, if anything
            }
            return read(socket.getInputStream(), start);
        } catch (SocketTimeoutException e) {
            return new Outcome("hang", "", "", elapsed(start));
        } catch (IOException e) {
            return new Outcome("closed", "", e.toString(), elapsed(start));
        }
    }

    private static long elapsed(long start) {
        return (System.nanoTime() - start) / 1_000_000;
    }

    private static int headerEnd(byte[] bytes) {
        String text = new String(bytes, StandardCharsets.ISO_8859_1);
        return text.indexOf("\r\n\r\n") + 4;
    }

    /** Writes {@code bytes} from {@code from} on one byte every 50 ms (at most 400 of them, 20 s). */
    private static void dribble(OutputStream out, byte[] bytes, int from) throws IOException {
        out.write(bytes, 0, from);
        out.flush();
        for (int i = from; i < bytes.length && i < from + 400; i++) {
            out.write(bytes[i]);
            out.flush();
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static Outcome read(InputStream in, long start) throws IOException {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        try {
            int n;
            while ((n = in.read(buf)) != -1 && all.size() < 1_000_000) {
                all.write(buf, 0, n);
            }
        } catch (SocketTimeoutException e) {
            if (all.size() == 0) {
                throw e;
            }
        } catch (IOException reset) {
            if (all.size() == 0) {
                return new Outcome("closed", "", reset.toString(), elapsed(start));
            }
        }
        String text = all.toString(StandardCharsets.ISO_8859_1);
        if (!text.startsWith("HTTP/1.")) {
            return new Outcome(text.isEmpty() ? "closed" : "garbage", text, "", elapsed(start));
        }
        int split = text.indexOf("\r\n\r\n");
        String head = split < 0 ? text : text.substring(0, split);
        String body = split < 0 ? "" : text.substring(split + 4);
        return new Outcome(head.substring(9, 12), head, body, elapsed(start));
    }
}
