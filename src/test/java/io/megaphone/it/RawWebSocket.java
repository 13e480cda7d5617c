// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A WebSocket client over a plain socket (RFC 6455 framing by hand), so a test can send what no WebSocket library
 * would: a frame header that claims a huge length, binary frames, fragments, any handshake header. Frames are
 * masked as a client's must be.
 */
final class RawWebSocket implements AutoCloseable {

    static final int TEXT = 0x1;
    static final int BINARY = 0x2;
    static final int CONTINUATION = 0x0;
    static final int CLOSE = 0x8;

    /** A frame from the server. */
    record Frame(boolean fin, int opcode, byte[] payload) {
        String text() {
            return new String(payload, StandardCharsets.UTF_8);
        }

        /** A close frame's code, -1 for another frame, 1005 for a close without one. */
        int closeCode() {
            if (opcode != CLOSE) {
                return -1;
            }
            return payload.length < 2 ? 1005 : (payload[0] & 0xff) << 8 | payload[1] & 0xff;
        }
    }

    /** The handshake's answer: status line code and the head as text. */
    record Handshake(int status, String head) {
    }

    private final Socket socket;
    private final OutputStream out;
    private final DataInputStream in;
    final Handshake handshake;

    private RawWebSocket(Socket socket, Handshake handshake, InputStream in) throws IOException {
        this.socket = socket;
        this.out = socket.getOutputStream();
        this.in = new DataInputStream(in);
        this.handshake = handshake;
    }

    /** Opens a WebSocket on {@code path} with {@code subprotocol} (null: none) and extra headers ("Name: value"). */
    static RawWebSocket connect(int port, String path, String subprotocol, String... headers) throws IOException {
        Socket socket = new Socket();
        socket.connect(new InetSocketAddress("127.0.0.1", port), 5000);
        socket.setSoTimeout(15_000);
        byte[] key = new byte[16];
        ThreadLocalRandom.current().nextBytes(key);
        StringBuilder request = new StringBuilder("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n"
                + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Key: " + Base64.getEncoder().encodeToString(key) + "\r\n");
        if (subprotocol != null) {
            request.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
        }
        for (String header : headers) {
            request.append(header).append("\r\n");
        }
        request.append("\r\n");
        socket.getOutputStream().write(request.toString().getBytes(StandardCharsets.ISO_8859_1));
        InputStream in = socket.getInputStream();
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            head.write(b);
        }
        String text = head.toString(StandardCharsets.ISO_8859_1);
        int status = text.startsWith("HTTP/1.1 ") ? Integer.parseInt(text.substring(9, 12)) : -1;
        return new RawWebSocket(socket, new Handshake(status, text), in);
    }

    /** One frame, masked; {@code claimedLength} ≥ 0 puts that length in the header instead of the payload's. */
    void sendFrame(boolean fin, int opcode, byte[] payload, long claimedLength) throws IOException {
        long length = claimedLength >= 0 ? claimedLength : payload.length;
        ByteArrayOutputStream frame = new ByteArrayOutputStream(payload.length + 14);
        frame.write((fin ? 0x80 : 0) | opcode);
        if (length < 126) {
            frame.write(0x80 | (int) length);
        } else if (length < 65536) {
            frame.write(0x80 | 126);
            frame.write((int) (length >>> 8));
            frame.write((int) length);
        } else {
            frame.write(0x80 | 127);
            for (int shift = 56; shift >= 0; shift -= 8) {
                frame.write((int) (length >>> shift));
            }
        }
        byte[] mask = new byte[4];
        ThreadLocalRandom.current().nextBytes(mask);
        frame.write(mask);
        byte[] masked = new byte[payload.length];
        for (int i = 0; i < payload.length; i++) {
            masked[i] = (byte) (payload[i] ^ mask[i & 3]);
        }
        frame.write(masked);
        out.write(frame.toByteArray());
        out.flush();
    }

    /** Bytes as they are: a frame no client would send (unmasked, reserved bits or opcodes). */
    void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    void sendText(String text) throws IOException {
        sendFrame(true, TEXT, text.getBytes(StandardCharsets.UTF_8), -1);
    }

    /** The next frame from the server; null when it closed the connection. */
    Frame read() throws IOException {
        int first;
        try {
            first = in.read();
        } catch (java.net.SocketException reset) {
            return null;
        }
        if (first < 0) {
            return null;
        }
        int second = in.readUnsignedByte();
        long length = second & 0x7f;
        if (length == 126) {
            length = in.readUnsignedShort();
        } else if (length == 127) {
            length = in.readLong();
        }
        if (length > 16 << 20) {
            throw new IOException("server frame of " + length + " bytes");
        }
        byte[] payload = new byte[(int) length];
        in.readFully(payload);
        return new Frame((first & 0x80) != 0, first & 0x0f, payload);
    }

    /**
     * Reads until the server's close frame and returns its code; -1 when the connection ended without one.
     * {@code texts} (if not null) collects the text frames read on the way.
     */
    int awaitClose(List<String> texts) throws IOException {
        try {
            for (Frame frame = read(); frame != null; frame = read()) {
                if (frame.opcode() == CLOSE) {
                    return frame.closeCode();
                }
                if (texts != null && frame.opcode() == TEXT) {
                    texts.add(frame.text());
                }
            }
        } catch (EOFException | SocketTimeoutException e) {
            return -1;
        }
        return -1;
    }

    /** Reads text frames until one contains {@code marker}; every text read is returned. */
    List<String> readUntil(String marker) throws IOException {
        List<String> texts = new ArrayList<>();
        for (Frame frame = read(); frame != null; frame = read()) {
            if (frame.opcode() == TEXT) {
                texts.add(frame.text());
                if (frame.text().contains(marker)) {
                    return texts;
                }
            } else if (frame.opcode() == CLOSE) {
                throw new IOException("closed with " + frame.closeCode() + " before " + marker + ": " + texts);
            }
        }
        throw new IOException("connection ended before " + marker + ": " + texts);
    }

    OutputStream output() {
        return out;
    }

    Socket socket() {
        return socket;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
