// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.Frame;
import io.megaphone.link.LinkStream;
import io.megaphone.metrics.WebSocketMetrics;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.handler.codec.http.websocketx.CorruptedWebSocketFrameException;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.LongSupplier;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.web.reactive.socket.CloseStatus;
import org.springframework.web.reactive.socket.WebSocketMessage;
import org.springframework.web.reactive.socket.WebSocketSession;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

/**
 * One client WebSocket joined to its link stream: each text message goes up as one DATA, each DATA comes down as one
 * text message. It ends once, for the first of: the client closing (1000 upstream), a binary message (1003 both
 * ways), a message over the size limit (1009 both ways), a frame with a reserved bit set (1002: no extension is
 * negotiated) or a text message that is not UTF-8 (1007), the stream ending upstream (its code to the client; 1012,
 * a lost link, after a random delay), the drain (1001 both ways), a ping left unanswered (1001).
 */
final class XmppWebSocketSession {

    private static final int PROTOCOL_ERROR = 1002;
    private static final int INVALID_PAYLOAD = 1007;
    private static final ThreadLocal<CharsetDecoder> UTF8 = ThreadLocal.withInitial(() -> StandardCharsets.UTF_8
            .newDecoder().onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT));

    private final WebSocketSession session;
    private final LinkStream stream;
    private final WebSocketMetrics metrics;
    private final LongSupplier jitterMillis;
    private final long maxMessage;
    private final AtomicBoolean ended = new AtomicBoolean();
    private final Sinks.Empty<Void> done = Sinks.empty();
    /** Whether the client sent a frame (a pong included) since the last {@link #pingOrEnd}. */
    private volatile boolean heard = true;

    XmppWebSocketSession(WebSocketSession session, LinkStream stream, MegaphoneProperties.WebSocket config,
                         WebSocketMetrics metrics, LongSupplier jitterMillis) {
        this.session = session;
        this.stream = stream;
        this.metrics = metrics;
        this.jitterMillis = jitterMillis;
        this.maxMessage = Math.min(config.maxMessageBytes(), stream.initialSendWindow());
        stream.onStalls(metrics::upstreamStall, metrics::downstreamStall);
    }

    /** Runs until the WebSocket is closed. */
    Mono<Void> run() {
        Flux<byte[]> fromClient = session.receive().handle((message, sink) -> {
            heard = true;
            if (message.getType() == WebSocketMessage.Type.BINARY) {
                end(CloseStatus.NOT_ACCEPTABLE.withReason("binary frames are not XMPP (RFC 7395)"), "binary");
                sink.complete();
                return;
            }
            if (message.getType() != WebSocketMessage.Type.TEXT) {
                return; // PING, PONG: Reactor Netty answers pings; a pong answers pingOrEnd
            }
            if (message.getNativeMessage() instanceof WebSocketFrame frame && frame.rsv() != 0) {
                end(new CloseStatus(PROTOCOL_ERROR, "reserved bits set, no extension negotiated"), "error");
                sink.complete();
                return;
            }
            DataBuffer payload = message.getPayload();
            int length = payload.readableByteCount();
            if (length > maxMessage) {
                end(CloseStatus.TOO_BIG_TO_PROCESS.withReason("message over " + maxMessage + " bytes"), "too_big");
                sink.complete();
                return;
            }
            byte[] bytes = new byte[length];
            payload.read(bytes);
            if (!isUtf8(bytes)) {
                end(new CloseStatus(INVALID_PAYLOAD, "text message not UTF-8"), "error");
                sink.complete();
                return;
            }
            metrics.received(length);
            sink.next(bytes);
        });
        stream.send(fromClient).subscribe(null, this::failed, () -> end(CloseStatus.NORMAL, "client"));
        // Never completes by itself: Reactor Netty would close the WebSocket without a code when it did; end() closes.
        session.send(stream.inbound().map(bytes -> {
            metrics.sent(bytes.length);
            return new WebSocketMessage(WebSocketMessage.Type.TEXT, session.bufferFactory().wrap(bytes));
        }).concatWith(Mono.never())).subscribe(null, error -> end(CloseStatus.SERVER_ERROR, "error"));
        stream.ended().subscribe(this::endedUpstream);
        return done.asMono();
    }

    /**
     * Ends the session when the client sent nothing, not even a pong, since the previous call (a client gone without
     * closing its TCP connection: its ejabberd session would stay online); otherwise sends it a ping. Called every
     * {@code ping-interval}, as ejabberd pings its own WebSocket clients every {@code websocket_ping_interval}.
     */
    void pingOrEnd() {
        if (!heard) {
            end(CloseStatus.GOING_AWAY.withReason("no answer to ping"), "ping_timeout");
            return;
        }
        heard = false;
        // A whole frame written beside the stream's own send: Netty writes the two in turn, never interleaved.
        session.send(Mono.just(session.pingMessage(factory -> factory.allocateBuffer(0))))
                .subscribe(null, error -> { }); // a connection that is closing: its end comes by itself
    }

    /**
     * Whether {@code bytes} are UTF-8, as RFC 6455 requires of a text message (Reactor Netty's decoder does not check
     * it); checked here rather than by ejabberd, whose parser would answer a stream error and close with 1000.
     */
    static boolean isUtf8(byte[] bytes) {
        int i = 0;
        while (i < bytes.length && bytes[i] >= 0) {
            i++; // ASCII, most of XMPP
        }
        if (i == bytes.length) {
            return true;
        }
        CharsetDecoder decoder = UTF8.get().reset();
        ByteBuffer in = ByteBuffer.wrap(bytes, i, bytes.length - i);
        CharBuffer out = CharBuffer.allocate(512);
        while (true) {
            CoderResult result = decoder.decode(in, out.clear(), true);
            if (result.isError()) {
                return false;
            }
            if (result.isUnderflow()) {
                return !decoder.flush(out.clear()).isError();
            }
        }
    }

    /**
     * The client's side failed: a frame Netty's decoder refused (over the size limit: it has sent 1009 already, or
     * another protocol violation), or an I/O error.
     */
    private void failed(Throwable error) {
        Throwable cause = error;
        while (cause != null && !(cause instanceof CorruptedWebSocketFrameException)
                && !(cause instanceof TooLongFrameException)) {
            cause = cause.getCause();
        }
        if (cause instanceof TooLongFrameException || cause instanceof CorruptedWebSocketFrameException corrupted
                && corrupted.closeStatus().code() == CloseStatus.TOO_BIG_TO_PROCESS.getCode()) {
            end(CloseStatus.TOO_BIG_TO_PROCESS.withReason("message over " + maxMessage + " bytes"), "too_big");
        } else if (cause instanceof CorruptedWebSocketFrameException corrupted) {
            end(new CloseStatus(corrupted.closeStatus().code(), "protocol error"), "error");
        } else {
            end(CloseStatus.GOING_AWAY.withReason("client connection failed"), "client");
        }
    }

    private void endedUpstream(LinkStream.End how) {
        String reason = how.code() == Frame.StreamClose.SERVICE_RESTART ? "link_lost" : "server";
        end(new CloseStatus(how.code(), how.reason()), reason);
    }

    /** Ends the session once: the stream upstream (when it has not ended there already), then the WebSocket. */
    void end(CloseStatus status, String reason) {
        if (!ended.compareAndSet(false, true)) {
            return;
        }
        metrics.closed(reason);
        stream.close(status.getCode(), status.getReason() == null ? "" : status.getReason());
        Mono<Void> close = session.close(status);
        if (status.getCode() == Frame.StreamClose.SERVICE_RESTART) {
            close = Mono.delay(Duration.ofMillis(jitterMillis.getAsLong())).then(close);
        }
        close.onErrorResume(e -> Mono.empty()).doFinally(signal -> done.tryEmitEmpty()).subscribe();
    }
}
