// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The body deadline of the BOSH port, driven on an embedded channel with Netty's mock clock: a late body gets 408
 * and the connection closes; a late body pipelined behind a request still held only closes the connection, since
 * its 408 would overtake the earlier answer.
 */
class RequestDeadlineTest {

    private static final long HEAD_NANOS = TimeUnit.SECONDS.toNanos(120);
    private static final long BODY_NANOS = TimeUnit.SECONDS.toNanos(20);

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();

    private EmbeddedChannel channel() {
        return new EmbeddedChannel(new RequestDeadline(HEAD_NANOS, BODY_NANOS, new EdgeMetrics(registry)));
    }

    private static DefaultHttpRequest headOfABody() {
        DefaultHttpRequest head = new DefaultHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/http-bind");
        head.headers().set("content-length", 100);
        return head;
    }

    private static DefaultHttpContent part() {
        return new DefaultHttpContent(Unpooled.copiedBuffer("<body rid='1'", StandardCharsets.UTF_8));
    }

    /** Moves the channel's mock clock on and runs what is due. */
    private static void afterSeconds(EmbeddedChannel channel, long seconds) {
        channel.advanceTimeBy(seconds, TimeUnit.SECONDS);
        channel.runScheduledPendingTasks();
    }

    private double badRequests() {
        return registry.get("megaphone.edge.requests").tag("outcome", "bad_request").counter().count();
    }

    @Test
    void aLateBodyGets408AndTheConnectionCloses() {
        EmbeddedChannel channel = channel();
        channel.writeInbound(headOfABody(), part());
        afterSeconds(channel, 21); // past the body deadline

        FullHttpResponse answer = channel.readOutbound();
        assertThat(answer.status()).isEqualTo(HttpResponseStatus.REQUEST_TIMEOUT);
        answer.release();
        assertThat(channel.isOpen()).isFalse();
        assertThat(badRequests()).isEqualTo(1);
        channel.finishAndReleaseAll();
    }

    @Test
    void aLateBodyPipelinedBehindAHeldRequestClosesWithoutAnAnswerOutOfOrder() {
        EmbeddedChannel channel = channel();
        channel.writeInbound(new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/http-bind",
                Unpooled.copiedBuffer("<body rid='1' sid='s' xmlns='x'/>", StandardCharsets.UTF_8))); // held
        channel.writeInbound(headOfABody(), part()); // pipelined behind it, its body never completes
        afterSeconds(channel, 21); // past the body deadline

        assertThat((Object) channel.readOutbound()).as("no 408 ahead of the held request's answer").isNull();
        assertThat(channel.isOpen()).isFalse();
        assertThat(badRequests()).isEqualTo(1);
        channel.finishAndReleaseAll();
    }

    @Test
    void aHeldRequestWhoseBodyIsCompleteRunsNoTimer() {
        EmbeddedChannel channel = channel();
        channel.writeInbound(new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/http-bind",
                Unpooled.copiedBuffer("<body rid='1' sid='s' xmlns='x'/>", StandardCharsets.UTF_8)));
        afterSeconds(channel, 600); // far past both deadlines: a held request is never timed out

        assertThat(channel.isOpen()).isTrue();
        assertThat((Object) channel.readOutbound()).isNull();
        channel.finishAndReleaseAll();
    }
}
